"""Datasets decoded once into uint8 tensors, seeded splits and few-shot draws, batched augmentation,
a feature cache.

`clipstudy.data.augment` (kornia) and `clipstudy.data.feature_cache` are imported on demand.
"""

from clipstudy.data import digits, hf, imagefolder, local_sets, shapes, synthetic, torchvision_sets, webdataset  # noqa: F401  (they register)
from clipstudy.data.base import (
    DATASETS,
    DataBundle,
    EvalSet,
    FileSplit,
    Source,
    Split,
    check_available,
    dataset_origin,
    load_dataset,
    open_eval_set,
)

__all__ = [
    "DATASETS",
    "DataBundle",
    "EvalSet",
    "FileSplit",
    "Source",
    "Split",
    "check_available",
    "dataset_origin",
    "load_dataset",
    "open_eval_set",
]
