"""Weight lookup: pretrained tags, local checkpoint files, the Hugging Face and open_clip caches, and fast, clear
failure when weights cannot be fetched (clipstudy.models.weights, through build_clip where that is what users see)."""

from __future__ import annotations

import socket
import time

import pytest

from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError
from clipstudy.models import build_clip
from clipstudy.models import weights as weights_module


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ModelError) as info:
        build_clip(ModelConfig(arch="ViT-B-32", pretrained="not_a_tag"))
    message = str(info.value)
    assert "not_a_tag" in message and "openai" in message and "laion2b_s34b_b79k" in message


def test_tag_for_arch_without_weights():
    with pytest.raises(ModelError, match="no published weights"):
        build_clip(ModelConfig(pretrained="openai"))


def test_missing_checkpoint_file():
    with pytest.raises(ModelError, match="no such checkpoint file"):
        build_clip(ModelConfig(pretrained="/nonexistent/weights.pt"))


def _assert_fails_fast(cfg: ModelConfig) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        build_clip(cfg)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"took {elapsed:.1f}s"
    message = str(info.value)
    assert "local file" in message and "model.pretrained" in message
    assert "huggingface-cli download laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message


def test_uncached_tag_fails_fast_with_hf_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fails_fast(ModelConfig(arch="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path)))


def test_uncached_tag_fails_fast_on_unreachable_network(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if weights_module.reachable("https://huggingface.co"):
        pytest.skip("the Hugging Face Hub is reachable from here")
    _assert_fails_fast(ModelConfig(arch="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path)))


def test_unreachable_endpoint_is_detected_quickly(monkeypatch, tmp_path):
    """A black-holed endpoint (TEST-NET-1 address, RFC 5737) must not hang past the probe timeout."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://192.0.2.1")
    start = time.perf_counter()
    with pytest.raises(ModelError, match="unreachable"):
        build_clip(ModelConfig(arch="ViT-B-32", pretrained="openai", cache_dir=str(tmp_path)))
    assert time.perf_counter() - start < 10


def test_reachable_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert weights_module.reachable(f"http://127.0.0.1:{port}/x")
    assert not weights_module.reachable(f"http://127.0.0.1:{port}/x")


def test_cached_hf_file_is_found(tmp_path):
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    cfg = {"hf_hub": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"}
    found = weights_module.cached_checkpoint(cfg, str(tmp_path))
    assert found == str(snapshot / "open_clip_model.safetensors")


def test_cached_url_file_is_found(tmp_path):
    (tmp_path / "weights-123.pt").write_bytes(b"x")
    cfg = {"url": "https://example.com/a/weights-123.pt"}
    assert weights_module.cached_checkpoint(cfg, str(tmp_path)) == str(tmp_path / "weights-123.pt")
    assert weights_module.cached_checkpoint({"url": "https://example.com/other.pt"}, str(tmp_path)) is None
