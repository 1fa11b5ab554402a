"""Helpers shared by the benchmarks: configs on synthetic data and a machine description."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from clipstudy.config import TrialConfig
from clipstudy.studyfile import build_config, load_study

SEED000_STUDY = Path(__file__).parents[1] / "studies" / "cifar100_seed000.yaml"


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return f"{os.cpu_count()}-core {platform.machine()} CPU, no GPU, torch {torch.__version__}"


def synthetic_config(method: str, arch: str, images: int, batch_size: int, **overrides) -> TrialConfig:
    """A one-epoch trial on synthetic data of about `images` training images (10 classes)."""
    per_class = max(3, round(images / 10 / 0.72))  # 20% test, then 10% val
    base = {
        "method": method,
        "model.arch": arch,
        "model.pretrained": "none",
        "data.name": "synthetic",
        "data.num_classes": 10,
        "data.samples_per_class": per_class,
        "data.cache_dir": os.environ.get("CLIPSTUDY_BENCH_CACHE", "/tmp/clipstudy-bench-features"),
        "train.epochs": 1,
        "train.batch_size": batch_size,
        "train.eval_batch_size": batch_size,
    }
    return build_config(base, overrides)


def seed000_augment() -> dict[str, Any]:
    """The seed-000 full fine-tuning arm's augmentation (studies/cifar100_seed000.yaml) as dotted overrides."""
    augment = load_study(SEED000_STUDY).arm_config("full_ft").augment.model_dump()
    return {f"augment.{key}": value for key, value in augment.items()}
