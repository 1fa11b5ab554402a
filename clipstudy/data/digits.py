"""scikit-learn's bundled 8x8 handwritten digits: real images that need no download."""

from __future__ import annotations

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import Source, Split, register_dataset
from clipstudy.data.templates import DIGITS_TEMPLATES

CLASSNAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@register_dataset("digits", origin="builtin")
def load_digits_source(cfg: DataConfig, image_size: int) -> Source:
    """1797 images, values 0..16 scaled to 0..255 and replicated to RGB; kept at 8x8 (no test split)."""
    from sklearn.datasets import load_digits  # scikit-learn takes seconds to import

    bunch = load_digits()
    gray = torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
    images = gray.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    return Source(classnames=list(CLASSNAMES), templates=list(DIGITS_TEMPLATES), train=Split(images, labels))
