"""Datasets decoded once into uint8 tensors, seeded splits, batched augmentation and a feature cache.

`clipstudy.data.augment` (kornia) and `clipstudy.data.feature_cache` are imported on demand.
"""

from clipstudy.data import digits, imagefolder, synthetic, torchvision_sets  # noqa: F401  (they register)
from clipstudy.data.base import DATASETS, DataBundle, Source, Split, load_dataset

__all__ = ["DATASETS", "DataBundle", "Source", "Split", "load_dataset"]
