"""A user's own images: `root/<class>/*.jpg`, or `root/{train,val,test}/<class>/*.jpg`.

Every image is decoded once with PIL to RGB, its shorter side resized (bicubic) and centre-cropped to
the decode size, and stacked into one uint8 tensor; decoding waits until the images a trial uses are
chosen (see `FileSplit`). With the split layout, `val/` and `test/` are optional: what is missing is
held out from `train/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import FileSplit, Source, register_dataset
from clipstudy.data.templates import GENERIC_TEMPLATES, humanize
from clipstudy.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")


@dataclass
class FolderSplits:
    """The class folder names (label order) and the splits found under a root."""

    classes: list[str]
    train: FileSplit
    val: FileSplit | None = None
    test: FileSplit | None = None


@register_dataset("imagefolder", origin="local")
def load_imagefolder(cfg: DataConfig, image_size: int) -> Source:
    root = Path(os.path.expanduser(cfg.root))
    if not root.is_dir():
        raise DataError(
            f"imagefolder: data.root {root} is not a folder; point data.root at a folder of class folders "
            f"(root/<class>/*.jpg) or of train/ val/ test/ folders of class folders"
        )
    found = read_class_folders(root, cfg.image_size or image_size, "imagefolder")
    names, raw = [humanize(c) for c in found.classes], list(found.classes)
    return Source(names, list(GENERIC_TEMPLATES), found.train, found.val, found.test, raw_classnames=raw)


def read_class_folders(root: Path, size: int, dataset: str) -> FolderSplits:
    """`root/{train,val,test}/<class>/` when `root/train` exists, else `root/<class>/` (train only)."""
    if (root / "train").is_dir():
        classes = class_folders(root / "train", dataset)
        present = [part for part in SPLIT_FOLDERS if (root / part).is_dir()]
        splits = {part: list_split(root / part, classes, size, dataset) for part in present}
        return FolderSplits(classes, splits["train"], splits.get("val"), splits.get("test"))
    classes = class_folders(root, dataset)
    return FolderSplits(classes, list_split(root, classes, size, dataset))


def class_folders(folder: Path, dataset: str) -> list[str]:
    classes = sorted(_subfolders(folder))
    if len(classes) < 2:
        raise DataError(
            f"{dataset}: {folder} has {len(classes)} class folder(s) {classes}; a classifier needs "
            f"at least 2: put each class's images in its own sub-folder of {folder}"
        )
    return classes


def _subfolders(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def list_split(folder: Path, classes: list[str], size: int, dataset: str) -> FileSplit:
    extra = sorted(set(_subfolders(folder)) - set(classes))
    if extra:
        raise DataError(
            f"{dataset}: {folder} has class folder(s) {extra} that train/ lacks; use the same class "
            f"folders in train/ val/ test/"
        )
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue  # only val/ or test/ can lack a class folder: the class list comes from train/
        found = sorted(
            str(p)
            for p in class_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not found:
            raise DataError(
                f"{dataset}: class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                f"add images or remove the folder"
            )
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"{dataset}: {folder} holds no class folders with images; add images or remove it")
    return FileSplit(files, torch.tensor(labels, dtype=torch.int64), size, dataset)
