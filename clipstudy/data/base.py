"""The data contract: decoded uint8 splits, the dataset registry and `load_dataset`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from clipstudy.config import DataConfig
from clipstudy.errors import DataError
from clipstudy.registry import Registry


@dataclass
class Split:
    images: torch.Tensor
    """uint8 [N, 3, H, W], CPU, contiguous."""
    labels: torch.Tensor
    """int64 [N]."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices].contiguous(), self.labels[indices].contiguous())


@dataclass
class Source:
    """What a dataset loader returns: decoded images before the seeded train/val/test split.

    `val` / `test` are None when the dataset ships no such split; `load_dataset` then carves them
    out of `train`.
    """

    classnames: list[str]
    templates: list[str]
    train: Split
    val: Split | None = None
    test: Split | None = None


@dataclass
class DataBundle:
    name: str
    classnames: list[str]
    """Human-readable, underscores replaced by spaces."""
    templates: list[str]
    """Prompt format strings containing '{}'; templates[0] is the single-template choice."""
    train: Split
    val: Split
    test: Split
    fingerprint: str
    """Short hash of the split contents, labels, class names and name: a feature-cache key part."""

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


Loader = Callable[[DataConfig, int], Source]
DATASETS: Registry[Loader] = Registry("dataset", DataError)


def load_dataset(cfg: DataConfig, image_size: int) -> DataBundle:
    """Decode `cfg.name` once and split it (seeded by `cfg.split_seed` only).

    `image_size` is the model's input resolution: the decode size of datasets whose images vary in
    size when `cfg.image_size` is None. Fixed-size datasets (CIFAR 32 px, digits 8 px) stay as stored.
    """
    from clipstudy.data.splits import stratified_holdout

    source = DATASETS.get(cfg.name)(cfg, image_size)
    _check(cfg.name, source)
    train, val, test = source.train, source.val, source.test
    if test is None:
        rest, held = stratified_holdout(train.labels, cfg.test_fraction, cfg.split_seed, "test")
        train, test = train.subset(rest), train.subset(held)
    if val is None:
        rest, held = stratified_holdout(train.labels, cfg.val_fraction, cfg.split_seed, "validation")
        train, val = train.subset(rest), train.subset(held)
    return DataBundle(
        name=cfg.name,
        classnames=source.classnames,
        templates=source.templates,
        train=train,
        val=val,
        test=test,
        fingerprint=fingerprint(cfg.name, source.classnames, (train, val, test)),
    )


def fingerprint(name: str, classnames: list[str], splits: tuple[Split, ...]) -> str:
    """Hash the bytes of every split, so any change of content, decode size or split changes it."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{name}\n{'|'.join(classnames)}\n".encode())
    for split in splits:
        for tensor in (split.images, split.labels):
            digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
            digest.update(tensor.contiguous().numpy().data)
    return digest.hexdigest()


def _check(name: str, source: Source) -> None:
    """Catch loader bugs early, with the dataset named."""
    num_classes = len(source.classnames)
    if num_classes < 2:
        raise DataError(f"dataset '{name}' has {num_classes} class(es); a classifier needs at least 2")
    for split in (source.train, source.val, source.test):
        if split is None:
            continue
        images, labels = split.images, split.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DataError(
                f"dataset '{name}': images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}"
            )
        if labels.dtype != torch.int64 or len(labels) != len(images):
            raise DataError(f"dataset '{name}': labels must be int64 [N] matching the images")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"dataset '{name}': labels outside 0..{num_classes - 1}")
