"""Benchmark datasets nothing can download for you: UCF101 (as frames) and ImageNet, read from data.root.

Both are class-folder layouts (see `imagefolder`); what differs is where they live, their class names
and CLIP's templates, and how their test split is found.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import FileSplit, Source, register_dataset
from clipstudy.data.imagefolder import class_folders, list_split, read_class_folders
from clipstudy.data.templates import UCF_TEMPLATES, humanize, imagenet_templates
from clipstudy.errors import DataError

UCF_VIDEO = re.compile(r"^v_.+_g(\d+)_c\d+")
"""A UCF101 video (or frame) name, `v_<Class>_g<group>_c<clip>`; groups 1-7 are the test set of the
official split 1 (testlist01.txt), so frames of one group never sit on both sides."""
UCF_TEST_GROUPS = 7
IMAGENET_CLASSES = 1000


@register_dataset("ucf101", origin="local")
def load_ucf101(cfg: DataConfig, image_size: int) -> Source:
    root = Path(os.path.expanduser(cfg.root)) / "ucf101"
    if not root.is_dir():
        raise DataError(
            f"ucf101: no folder {root}. UCF101 is videos; the benchmark (CoOp, CLIP-CITE) uses one frame per "
            f"video: put the middle frame of each video at {root}/<Class>/v_<Class>_gNN_cNN.jpg (the layout of "
            f"CoOp's UCF-101-midframes, see its DATASETS.md), or your own split as {root}/train/<Class>/ and "
            f"{root}/test/<Class>/"
        )
    found = read_class_folders(root, cfg.image_size or image_size, "ucf101")
    train, test = found.train, found.test
    if test is None:
        train, test = _official_split(train)
    names = [ucf_classname(c) for c in found.classes]
    return Source(names, list(UCF_TEMPLATES), train, found.val, test, raw_classnames=list(found.classes))


def ucf_classname(folder: str) -> str:
    """'ApplyEyeMakeup' (the videos' folders) or 'Apply_Eye_Makeup' (CoOp's frames) -> 'Apply Eye Makeup'."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", humanize(folder))


def _official_split(frames: FileSplit) -> tuple[FileSplit, FileSplit | None]:
    """Split 1 by video group when every file is named like a UCF101 video; else None (held out)."""
    groups = [UCF_VIDEO.match(Path(f).stem) for f in frames.files]
    if not groups or not all(groups):
        return frames, None
    is_test = torch.tensor([int(g.group(1)) <= UCF_TEST_GROUPS for g in groups])
    return frames.subset((~is_test).nonzero().flatten()), frames.subset(is_test.nonzero().flatten())


@register_dataset("imagenet", origin="local")
def load_imagenet(cfg: DataConfig, image_size: int) -> Source:
    """ILSVRC-2012: train/ is the training pool (validation held out of it), val/ the test set."""
    from open_clip import IMAGENET_CLASSNAMES

    root = Path(os.path.expanduser(cfg.root)) / "imagenet"
    fix = (
        f"torchvision cannot download ImageNet: get ILSVRC-2012 from image-net.org (registration needed) and lay "
        f"it out as {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (the validation images sorted into "
        "their class folders, the layout most ImageNet training code expects)"
    )
    missing = [part for part in ("train", "val") if not (root / part).is_dir()]
    if missing:
        raise DataError(f"imagenet: {root} has no {' or '.join(f'{p}/' for p in missing)} folder; {fix}")
    size = cfg.image_size or image_size
    classes = class_folders(root / "train", "imagenet")
    if len(classes) != IMAGENET_CLASSES or not all(re.fullmatch(r"n\d{8}", c) for c in classes):
        raise DataError(
            f"imagenet: {root / 'train'} has {len(classes)} class folders, not the {IMAGENET_CLASSES} WordNet ids "
            f"(n01440764, ...) whose sorted order gives the labels; {fix}"
        )
    train = list_split(root / "train", classes, size, "imagenet")
    test = list_split(root / "val", classes, size, "imagenet")
    return Source(list(IMAGENET_CLASSNAMES), imagenet_templates(), train, test=test)
