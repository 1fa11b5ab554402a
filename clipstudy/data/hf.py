"""Hugging Face `datasets` on disk: `data.name: hf`, `data.root` a folder written by `save_to_disk` (a
DatasetDict or a Dataset) or a local dataset folder `datasets.load_dataset` reads (parquet, arrow,
imagefolder); `data.image_key` (default `image`) and `data.label_key` (default `label`) name the columns.

Splits `train`, `validation` (or `val`, `valid`) and `test` are used as the dataset ships them; what is
missing is held out from train. A ClassLabel label column names the classes. Rows are read by index when
the decoded-image store is built (the image column undecoded: its bytes or its path), so the dataset is
never decoded into memory; the store's key is the split's own fingerprint.
"""

from __future__ import annotations

import os

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import FileSplit, Source, register_dataset
from clipstudy.data.decode import hf_item
from clipstudy.data.hf_rows import open_hf_dataset
from clipstudy.data.templates import GENERIC_TEMPLATES
from clipstudy.errors import DataError

VAL_NAMES = ("validation", "val", "valid")


def _split(root: str, name: str, image_key: str, label_key: str, size: int) -> FileSplit:
    split = open_hf_dataset(root)[name]
    for key, setting in ((image_key, "data.image_key"), (label_key, "data.label_key")):
        if key not in split.column_names:
            raise DataError(
                f"hf: split '{name}' of {root} has no column '{key}' (columns: {', '.join(split.column_names)}); "
                f"set {setting}"
            )
    labels = torch.tensor(split[label_key], dtype=torch.int64)
    items = [hf_item(root, name, image_key, row) for row in range(len(split))]
    return FileSplit(items, labels, size, "hf", identity=f"{root}\0{name}\0{split._fingerprint}")


@register_dataset("hf", origin="local")
def load_hf(cfg: DataConfig, image_size: int) -> Source:
    root = os.path.abspath(os.path.expanduser(cfg.root))
    found = open_hf_dataset(root)
    image_key, label_key, size = cfg.image_key or "image", cfg.label_key or "label", cfg.image_size or image_size
    if "train" not in found:
        raise DataError(f"hf: the dataset at {root} has no 'train' split (splits: {', '.join(found)})")
    val_name = next((name for name in VAL_NAMES if name in found), None)
    train, val, test = (
        _split(root, name, image_key, label_key, size) if name else None
        for name in ("train", val_name, "test" if "test" in found else None)
    )
    feature = found["train"].features.get(label_key)
    names = getattr(feature, "names", None)
    if names is None:
        count = 1 + max(int(s.labels.max()) for s in (train, val, test) if s is not None)
        names = [f"class {i}" for i in range(count)]
    readable = [name.replace("_", " ") for name in names]
    return Source(readable, list(GENERIC_TEMPLATES), train, val, test, raw_classnames=list(names))
