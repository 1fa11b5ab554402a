"""The data contract: decoded uint8 splits, the dataset registry and `load_dataset`.

`load_dataset` turns what a loader returns into the splits a trial uses, in this order: the seeded
train/val (and test) hold-out, the few-shot draw (`data.shots`), the base/new class selection
(`data.classes`), and only then decoding, so that a 16-shot ImageNet run decodes 16k images, not 1.3M.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from clipstudy.config import DataConfig
from clipstudy.errors import DataError
from clipstudy.registry import Registry


@dataclass
class Split:
    images: torch.Tensor
    """uint8 [N, 3, H, W], CPU, contiguous: in memory, or over a memory-mapped decoded-image store."""
    labels: torch.Tensor
    """int64 [N]."""
    key: str | None = None
    """The decoded-image store's key when `images` is one (what its bytes depend on): the split's
    fingerprint without hashing its pixels."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices].contiguous(), self.labels[indices].contiguous())


@dataclass
class FileSplit:
    """Image files and their labels, decoded only once the images a trial needs are chosen."""

    files: list[str]
    labels: torch.Tensor
    """int64 [N]."""
    size: int
    """Decode size: the shorter side is resized to it and the image centre-cropped to a square."""
    dataset: str
    """Named in decoding errors."""
    identity: str | None = None
    """What the files' contents depend on when their names alone do not say it (a Hugging Face dataset's
    fingerprint, the stats of WebDataset shards): the store key uses it instead of a `stat` per file."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> FileSplit:
        files = [self.files[i] for i in indices.tolist()]
        return dataclasses.replace(self, files=files, labels=self.labels[indices].contiguous())

    def decode(self, interpolation: str = "bicubic", store: Path | None = None, mode: str = "eval") -> Split:
        """The decoded images: opened from (or first built into) the decoded-image store under `store`, or,
        without one, decoded into memory."""
        if store is None:
            from clipstudy.data.decode import decode_images

            return Split(decode_images(self.files, self.size, self.dataset, interpolation, mode), self.labels)
        from clipstudy.data.store import StoreSpec, open_store

        opened = open_store(StoreSpec(self.files, self.size, interpolation, mode, self.dataset, self.identity), store)
        return Split(opened.images, self.labels, key=opened.key)


AnySplit = Split | FileSplit


def materialize(
    split: AnySplit, interpolation: str = "bicubic", store: Path | None = None, mode: str = "eval"
) -> Split:
    """The decoded images of `split`; files are resized with `interpolation` (the model's), through the
    decoded-image store under `store` when given."""
    return split.decode(interpolation, store, mode) if isinstance(split, FileSplit) else split


@dataclass
class Source:
    """What a dataset loader returns: images (decoded, or files) before the seeded train/val/test split.

    `val` / `test` are None when the dataset ships no such split; `load_dataset` then carves them
    out of `train`.
    """

    classnames: list[str]
    templates: list[str]
    train: AnySplit
    val: AnySplit | None = None
    test: AnySplit | None = None
    raw_classnames: list[str] | None = None
    """The names as the dataset stores them ('aquarium_fish'), when `classnames` cleaned them up."""


@dataclass
class EvalSet:
    """A labelled test set with what zero-shot evaluation needs: its class names and prompt templates.

    The new classes of base-to-new and each retention dataset are one; `test` may still be files
    until `loaded()` decodes them.
    """

    name: str
    classnames: list[str]
    templates: list[str]
    test: AnySplit
    raw_classnames: list[str] | None = None
    """The names as the dataset stores them, when `classnames` cleaned them up (`prompts.classnames: raw`)."""

    def loaded(self, interpolation: str = "bicubic") -> EvalSet:
        return dataclasses.replace(self, test=materialize(self.test, interpolation))


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
    """Short hash of the split contents, labels, class names and name."""
    split_fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    """The same per split ('train', 'val', 'test'): a feature-cache key part, so that trials that read the
    same val/test share their features whatever their train split (zero-shot leaves it empty)."""
    new_classes: EvalSet | None = None
    """With `data.classes: base`, the test images and names of the new classes (labels 0..C_new-1)."""
    raw_classnames: list[str] | None = None
    """The names as the dataset stores them ('aquarium_fish'), when `classnames` cleaned them up."""

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


Loader = Callable[[DataConfig, int], Source]
DATASETS: Registry[Loader] = Registry("dataset", DataError)

Origin = Literal["builtin", "download", "local"]
"""builtin: made by code or shipped in a package, no files; download: torchvision fetches it into
data.root when data.download is true; local: the user places its files under data.root."""
_ORIGINS: dict[str, Origin] = {}


def register_dataset(name: str, origin: Origin) -> Callable[[Loader], Loader]:
    """Register a loader under `name`, with where its files come from (listed and tested by it)."""

    def add(loader: Loader) -> Loader:
        DATASETS.register(name)(loader)
        _ORIGINS[name] = origin
        return loader

    return add


def dataset_origin(name: str) -> Origin:
    DATASETS.get(name)  # an unknown name raises the registry's error, with the valid names
    return _ORIGINS[name]


def load_dataset(
    cfg: DataConfig,
    image_size: int,
    interpolation: str = "bicubic",
    decode_train: bool = True,
    train_size: int | None = None,
) -> DataBundle:
    """Split `cfg.name` (seeded by `cfg.split_seed` only), apply the few-shot draw (`data.shots`, seeded
    by `data.shot_seed`) and the class selection (`data.classes`), and decode what remains once.

    `image_size` is the model's input resolution: the decode size of datasets whose images vary in
    size when `cfg.image_size` is None, resized with `interpolation` (the model's resampling, so that a
    model whose preprocessing is bilinear sees bilinear pixels). Fixed-size datasets (CIFAR 32 px, digits
    8 px) stay as stored. Without `decode_train` (a method that does not train: zero-shot) the train
    split is drawn as usual but left empty, its files never read. `train_size` decodes the train split's
    files at another size (the store size random crops read from; `store_size`).

    Files are decoded through the decoded-image store (`data.store`, under `data.cache_dir`): once per
    machine, then opened memory-mapped.
    """
    from clipstudy.data.splits import base_new_classes, few_shot_indices

    source, (train, val, test) = _open(cfg, image_size)
    classnames, raw = source.classnames, source.raw_classnames or source.classnames
    if cfg.shots is not None:
        seed = cfg.split_seed if cfg.shot_seed is None else cfg.shot_seed
        train = train.subset(few_shot_indices(train.labels, cfg.shots, seed, classnames))
        # CoOp: validation keeps min(k, 4) per class, or all of a class when it has fewer
        val = val.subset(few_shot_indices(val.labels, min(cfg.shots, 4), seed, classnames, strict=False))
    new_classes = None
    if cfg.classes != "all":
        base, new = base_new_classes(len(classnames), cfg.name)
        keep = base if cfg.classes == "base" else new
        if cfg.classes == "base":
            new_test = materialize(keep_classes(test, new), interpolation)
            new_names, new_raw = [classnames[c] for c in new], [raw[c] for c in new]
            new_classes = EvalSet(f"{cfg.name}/new", new_names, source.templates, new_test, new_raw)
        train, val, test = (keep_classes(split, keep) for split in (train, val, test))
        classnames, raw = [classnames[c] for c in keep], [raw[c] for c in keep]
    store = store_root(cfg.cache_dir) if cfg.store else None
    if train_size is not None and isinstance(train, FileSplit) and cfg.image_size is None:
        train = dataclasses.replace(train, size=train_size)
    train = (
        materialize(train, interpolation, store, "train" if train_size else "eval") if decode_train else _unread(train)
    )
    val, test = (materialize(split, interpolation, store) for split in (val, test))
    splits = {"train": train, "val": val, "test": test}
    parts = {name: fingerprint(cfg.name, classnames, (split,)) for name, split in splits.items()}
    return DataBundle(
        name=cfg.name,
        classnames=classnames,
        templates=source.templates,
        train=train,
        val=val,
        test=test,
        fingerprint=_combined(parts),
        split_fingerprints=parts,
        new_classes=new_classes,
        raw_classnames=raw,
    )


def open_eval_set(cfg: DataConfig, image_size: int, per_class: int | None = None) -> EvalSet:
    """The test split of `cfg.name` with its names and templates, not yet decoded where it is files.

    `per_class` caps the images per class (a draw seeded by `cfg.split_seed`); None keeps them all.
    Opening checks that the dataset is there; `EvalSet.loaded()` decodes it when it is needed.
    """
    from clipstudy.data.splits import few_shot_indices

    source, (_, _, test) = _open(cfg, image_size)
    if per_class is not None:
        test = test.subset(few_shot_indices(test.labels, per_class, cfg.split_seed, source.classnames, False, "test"))
    return EvalSet(cfg.name, source.classnames, source.templates, test, source.raw_classnames)


def check_available(cfg: DataConfig, image_size: int) -> None:
    """Open `cfg.name` as a trial would, without decoding anything: its files listed (downloaded first where
    `data.download` allows), its splits held out. A missing or malformed dataset raises its `DataError`; a
    built-in one has nothing to miss and is not opened. `image_size` only sets what files would decode to."""
    if dataset_origin(cfg.name) != "builtin":
        _open(cfg, image_size)


def keep_classes(split: AnySplit, classes: Sequence[int]) -> AnySplit:
    """The samples of `classes`, relabelled 0..len(classes)-1 in the order given."""
    lookup = torch.full((int(max(classes)) + 1,), -1, dtype=torch.int64)
    lookup[torch.as_tensor(list(classes))] = torch.arange(len(classes))
    kept = split.subset(torch.isin(split.labels, torch.as_tensor(list(classes))).nonzero().flatten())
    return dataclasses.replace(kept, labels=lookup[kept.labels])


def _open(cfg: DataConfig, image_size: int) -> tuple[Source, tuple[AnySplit, AnySplit, AnySplit]]:
    """Run the loader and hold out what the dataset does not ship: test, then validation."""
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
    return source, (train, val, test)


def _unread(split: AnySplit) -> Split:
    """An empty split shaped like `split`'s images, for a split no one reads."""
    if isinstance(split, Split):
        return split.subset(torch.empty(0, dtype=torch.int64))
    return Split(torch.empty((0, 3, split.size, split.size), dtype=torch.uint8), torch.empty(0, dtype=torch.int64))


def store_size(cfg: DataConfig, image_size: int) -> int:
    """`data.store_size`, or the model's size x 8/7 (256 for 224): RandomResizedCrop then shrinks a larger
    stored image instead of upsampling a model-sized one."""
    return cfg.store_size or round(image_size * 8 / 7)


def store_root(cache_dir: str) -> Path:
    """Where the decoded-image stores live: `data.cache_dir/stores`."""
    return Path(os.path.expanduser(cache_dir)) / "stores"


def fingerprint(name: str, classnames: list[str], splits: tuple[Split, ...]) -> str:
    """Hash the bytes of every split, so any change of content, decode size or split changes it; a split
    over a decoded-image store contributes its key (file stats and decode settings) instead of its pixels."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{name}\n{'|'.join(classnames)}\n".encode())
    for split in splits:
        if split.key is not None:
            digest.update(f"store:{split.key}\n".encode())
        for tensor in (split.labels,) if split.key is not None else (split.images, split.labels):
            digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
            digest.update(tensor.contiguous().numpy().data)
    return digest.hexdigest()


def _combined(parts: dict[str, str]) -> str:
    """One hash of the splits' hashes (each split's pixels are hashed once)."""
    return hashlib.blake2b("|".join(parts[name] for name in sorted(parts)).encode(), digest_size=8).hexdigest()


def _check(name: str, source: Source) -> None:
    """Catch loader bugs early, with the dataset named."""
    num_classes = len(source.classnames)
    if num_classes < 2:
        raise DataError(f"dataset '{name}' has {num_classes} class(es); a classifier needs at least 2")
    for split in (source.train, source.val, source.test):
        if split is None:
            continue
        labels = split.labels
        if isinstance(split, Split):
            images = split.images
            if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
                raise DataError(
                    f"dataset '{name}': images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}"
                )
            count = len(images)
        else:
            count = len(split.files)
        if labels.dtype != torch.int64 or len(labels) != count:
            raise DataError(f"dataset '{name}': labels must be int64 [N] matching the images")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"dataset '{name}': labels outside 0..{num_classes - 1}")
