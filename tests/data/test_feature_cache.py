"""FeatureCache: hits, misses, atomic files."""

from __future__ import annotations

import json

import torch

from clipstudy.data.feature_cache import FeatureCache

KEY = {"arch": "clipstudy-tiny", "pretrained": "none", "dataset": "abc123", "split": "train", "resolution": 32}


def test_second_call_is_a_hit(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # created lazily
    first = cache.load_or_compute(KEY, lambda: torch.randn(5, 7))
    second = cache.load_or_compute(dict(reversed(KEY.items())), lambda: torch.zeros(1))
    assert (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(first, second)
    digest = FeatureCache.digest(KEY)
    assert json.loads((tmp_path / "cache" / f"{digest}.json").read_text()) == KEY
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{digest}.json", f"{digest}.safetensors"]


def test_different_key_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.load_or_compute(KEY, lambda: torch.ones(2, 3))
    other = cache.load_or_compute({**KEY, "split": "val"}, lambda: torch.full((4, 3), 2.0))
    assert (cache.hits, cache.misses) == (0, 2)
    assert torch.equal(other, torch.full((4, 3), 2.0))


def test_shared_between_instances_and_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    FeatureCache("~/features").load_or_compute(KEY, lambda: torch.arange(6.0))
    reader = FeatureCache("~/features")
    assert torch.equal(reader.load_or_compute(KEY, lambda: torch.zeros(1)), torch.arange(6.0))
    assert reader.hits == 1 and (tmp_path / "features").is_dir()


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.path(KEY).write_bytes(b"truncated")
    assert torch.equal(cache.load_or_compute(KEY, lambda: torch.ones(3)), torch.ones(3))
    assert cache.misses == 1
    assert torch.equal(FeatureCache(tmp_path).load_or_compute(KEY, lambda: torch.zeros(3)), torch.ones(3))
