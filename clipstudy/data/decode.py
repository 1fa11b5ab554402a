"""Decode image files once into one uint8 tensor: RGB, shorter side resized, centre-cropped."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from clipstudy.errors import DataError


def decode_images(files: Sequence[str | Path], size: int, dataset: str, interpolation: str = "bicubic") -> torch.Tensor:
    """[N, 3, size, size] uint8 of `files`, decoded in a thread pool (PIL releases the GIL)."""
    if not files:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda path: decode_image(path, size, dataset, interpolation), files))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def decode_image(path: str | Path, size: int, dataset: str, interpolation: str = "bicubic") -> np.ndarray:
    """RGB, shorter side resized to `size` with PIL's `interpolation` filter (bicubic, bilinear: the model's,
    `model.interpolation`) and centre-cropped: [size, size, 3] uint8."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{dataset}: cannot read image {path} ({error}); delete or replace the file") from None
    return np.asarray(ImageOps.fit(rgb, (size, size), method=Image.Resampling[interpolation.upper()]))
