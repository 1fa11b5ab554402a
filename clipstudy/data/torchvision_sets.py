"""CIFAR-10/100 from torchvision, taken as whole uint8 arrays (no per-image PIL loop)."""

from __future__ import annotations

import os

import numpy as np
import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import DATASETS, Source, Split
from clipstudy.data.templates import CIFAR_TEMPLATES, humanize
from clipstudy.errors import DataError

_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _cifar(cfg: DataConfig, name: str) -> Source:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    root = os.path.expanduser(cfg.root)
    try:
        train = cls(root, train=True, download=cfg.download)
        test = cls(root, train=False, download=cfg.download)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        folder = os.path.join(root, _FOLDERS[name])
        raise DataError(
            f"{name}: no usable dataset at {folder} ({error}); set data.download: true to fetch it, or place "
            f"torchvision's '{_FOLDERS[name]}' folder in data.root ({root})"
        ) from None
    except OSError as error:  # network or disk trouble while downloading
        raise DataError(
            f"{name}: download into {root} failed ({error}); check the network, or place torchvision's "
            f"'{_FOLDERS[name]}' folder there and set data.download: false"
        ) from None
    return Source(
        classnames=[humanize(c) for c in train.classes],
        templates=list(CIFAR_TEMPLATES),
        train=_split(train.data, train.targets),
        test=_split(test.data, test.targets),
    )


def _split(data: np.ndarray, targets: list[int]) -> Split:
    """[N, H, W, 3] uint8 HWC array -> CHW tensor."""
    images = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.as_tensor(targets, dtype=torch.int64))


@DATASETS.register("cifar10")
def load_cifar10(cfg: DataConfig, image_size: int) -> Source:
    return _cifar(cfg, "cifar10")


@DATASETS.register("cifar100")
def load_cifar100(cfg: DataConfig, image_size: int) -> Source:
    return _cifar(cfg, "cifar100")
