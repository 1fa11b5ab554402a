"""Shared fixtures: tiny, fast trial configs and an isolated feature cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_config(tmp_path):
    """Build a TrialConfig on the tiny model and small synthetic data; keyword args are dotted overrides."""
    from clipstudy.config import build_config

    def make(method: str = "linear_probe", **overrides):
        base = {
            "method": method,
            "model.arch": "clipstudy-tiny",
            "model.pretrained": "none",
            "data.name": "synthetic",
            "data.num_classes": 4,
            "data.samples_per_class": 24,
            "data.cache_dir": str(tmp_path / "features"),
            "train.epochs": 1,
            "train.batch_size": 16,
            "train.device": "cpu",
        }
        return build_config(base, {k.replace("__", "."): v for k, v in overrides.items()})

    return make
