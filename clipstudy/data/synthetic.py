"""A deterministic synthetic dataset for tests and the quickstart.

Class c has its own hue and stripe orientation; each sample gets a random stripe phase and
frequency jitter, brightness jitter and pixel noise, so the task is learnable by a tiny model but
not trivially constant per class.
"""

from __future__ import annotations

import math

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import Source, Split, register_dataset
from clipstudy.data.templates import GENERIC_TEMPLATES


def make_synthetic(num_classes: int, samples_per_class: int, size: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    n = num_classes * samples_per_class
    labels = torch.arange(num_classes).repeat_interleave(samples_per_class)
    classes = labels.float()
    hue = classes / num_classes * 2 * math.pi
    colour = 0.5 + 0.4 * torch.stack([torch.cos(hue + k * 2 * math.pi / 3) for k in range(3)], dim=1)
    angle = (classes * 0.618034 % 1.0) * math.pi  # golden-ratio spacing keeps neighbouring classes apart
    frequency = 2 * math.pi * 3 / size * (1 + 0.2 * torch.rand(n, generator=generator))
    phase = 2 * math.pi * torch.rand(n, generator=generator)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    along = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    stripes = 0.5 + 0.5 * torch.sin(frequency[:, None, None] * along + phase[:, None, None])
    brightness = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    images = colour[:, :, None, None] * (0.4 + 0.6 * stripes[:, None]) * brightness
    images = images + 0.08 * torch.randn(n, 3, size, size, generator=generator)
    pixels = images.clamp(0, 1).mul(255).round().to(torch.uint8).contiguous()
    return Split(pixels, labels)


@register_dataset("synthetic", origin="builtin")
def load_synthetic(cfg: DataConfig, image_size: int) -> Source:
    """Sized `data.image_size` or 32 (not the model's size: the engine resizes batches on the device)."""
    split = make_synthetic(cfg.num_classes, cfg.samples_per_class, cfg.image_size or 32, cfg.split_seed)
    return Source(
        classnames=[f"class {c}" for c in range(cfg.num_classes)],
        templates=list(GENERIC_TEMPLATES),
        train=split,
    )
