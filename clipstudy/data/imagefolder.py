"""A user's own images: `root/<class>/*.jpg`, or `root/{train,val,test}/<class>/*.jpg`.

Every image is decoded once with PIL to RGB, its shorter side resized (bicubic) and centre-cropped to
the decode size, and stacked into one uint8 tensor. With the split layout, `val/` and `test/` are
optional: what is missing is held out from `train/`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from clipstudy.config import DataConfig
from clipstudy.data.base import DATASETS, Source, Split
from clipstudy.data.templates import GENERIC_TEMPLATES, humanize
from clipstudy.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")


@DATASETS.register("imagefolder")
def load_imagefolder(cfg: DataConfig, image_size: int) -> Source:
    root = Path(os.path.expanduser(cfg.root))
    if not root.is_dir():
        raise DataError(
            f"imagefolder: data.root {root} is not a folder; point data.root at a folder of class folders "
            f"(root/<class>/*.jpg) or of train/ val/ test/ folders of class folders"
        )
    size = cfg.image_size or image_size
    if (root / "train").is_dir():
        classes = _class_folders(root / "train")
        splits = {part: _read_split(root / part, classes, size) for part in SPLIT_FOLDERS if (root / part).is_dir()}
        return Source(_names(classes), list(GENERIC_TEMPLATES), splits["train"], splits.get("val"), splits.get("test"))
    classes = _class_folders(root)
    return Source(_names(classes), list(GENERIC_TEMPLATES), _read_split(root, classes, size))


def _names(classes: list[str]) -> list[str]:
    return [humanize(c) for c in classes]


def _class_folders(folder: Path) -> list[str]:
    classes = sorted(_subfolders(folder))
    if len(classes) < 2:
        raise DataError(
            f"imagefolder: {folder} has {len(classes)} class folder(s) {classes}; a classifier needs "
            f"at least 2: put each class's images in its own sub-folder of {folder}"
        )
    return classes


def _subfolders(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _read_split(folder: Path, classes: list[str], size: int) -> Split:
    extra = sorted(set(_subfolders(folder)) - set(classes))
    if extra:
        raise DataError(
            f"imagefolder: {folder} has class folder(s) {extra} that train/ lacks; use the same class "
            f"folders in train/ val/ test/"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue  # only val/ or test/ can lack a class folder: the class list comes from train/
        found = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not found:
            raise DataError(
                f"imagefolder: class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                f"add images or remove the folder"
            )
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"imagefolder: {folder} holds no class folders with images; add images or remove it")
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL releases the GIL
        arrays = list(pool.map(lambda path: _decode(path, size), files))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def _decode(path: Path, size: int) -> np.ndarray:
    """RGB, shorter side resized to `size` and centre-cropped: [size, size, 3] uint8."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"imagefolder: cannot read image {path} ({error}); delete or replace the file") from None
    return np.asarray(ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC))
