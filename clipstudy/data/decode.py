"""Decode image files into uint8 RGB arrays: the eval mode exactly as open_clip's preprocessing does it, the
train mode at the (larger) store size for random crops.

An image is named by an item string: a file path, a member of a tar shard
(`tar://<offset>+<size>@<shard>#<member>`, WebDataset) or a row of a Hugging Face dataset saved on disk
(`hf://<split>/<column>/<row>@<root>`); `open_item` reads any of them.

Eval: shorter side resized to `size` with the model's filter (torchvision's `Resize`, as open_clip's
`image_transform(is_train=False)`), centre crop, then RGB: open_clip's order, so evaluation numbers stay
comparable with published ones. Train: the same geometry at the store size, with JPEG draft decoding (a
reduced-scale decode when the file is much larger), which open_clip does not do and training does not need
to match.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import IO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from clipstudy.errors import DataError


@functools.cache
def _torchvision() -> tuple[ModuleType, dict[str, object]]:
    """torchvision's functional transforms and the filters by name, imported on first decode: importing
    torchvision imports torch._dynamo (about 4 s of CPU), and every study driver and `clipstudy validate` imports
    this module through the dataset registry without decoding an image."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    return TF, {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}


def decode_images(
    files: Sequence[str | Path], size: int, dataset: str, interpolation: str = "bicubic", mode: str = "eval"
) -> torch.Tensor:
    """[N, 3, size, size] uint8 of `files`, decoded in a thread pool (PIL releases the GIL), in memory."""
    if not files:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda path: decode_image(path, size, dataset, interpolation, mode), files))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def decode_image(
    path: str | Path, size: int, dataset: str, interpolation: str = "bicubic", mode: str = "eval"
) -> np.ndarray:
    """One image as [size, size, 3] uint8: shorter side to `size` with `interpolation`, centre crop, RGB."""
    try:
        with Image.open(open_item(str(path))) as image:
            if mode == "train":
                image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            image.load()
            image = eight_bit(image)
            TF, filters = _torchvision()
            resized = TF.resize(image, size, interpolation=filters[interpolation])
            rgb = TF.center_crop(resized, size).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(
            f"{dataset}: cannot read image {describe_item(str(path))} ({error}); delete or replace the file"
        ) from None
    return np.asarray(rgb)


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale images (scientific PNGs and TIFFs) as 8-bit greyscale, scaled to their type's
    range: PIL's RGB conversion clips them instead (every 16-bit value above 255 turns white), as open_clip's
    preprocessing, which reads them the same way, does. 8-bit images pass unchanged."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0  # [0, 1] floats, else already 0..255
    else:
        scale = 1 / 257 if values.max(initial=0.0) > 255 or image.mode.startswith("I;16") else 1.0
    return Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8), mode="L")


def tar_item(shard: str, offset: int, size: int, member: str) -> str:
    return f"tar://{offset}+{size}@{shard}#{member}"


def hf_item(root: str, split: str, column: str, row: int) -> str:
    return f"hf://{split}/{column}/{row}@{root}"


def open_item(item: str) -> str | IO[bytes]:
    """A file path as it is, or the bytes of a tar member or a dataset row."""
    if item.startswith("tar://"):
        span, rest = item[len("tar://") :].split("@", 1)
        offset, size = (int(part) for part in span.split("+"))
        with open(rest.rsplit("#", 1)[0], "rb") as shard:
            shard.seek(offset)
            return io.BytesIO(shard.read(size))
    if item.startswith("hf://"):
        address, root = item[len("hf://") :].split("@", 1)
        split, column, row = address.rsplit("/", 2)
        from clipstudy.data.hf_rows import hf_images

        value = hf_images(root, split, column)[int(row)][column]
        return value["path"] if value.get("bytes") is None else io.BytesIO(value["bytes"])
    return item


def describe_item(item: str) -> str:
    """An item as a user finds it: the file, the member of its shard, or the row of its dataset."""
    if item.startswith("tar://"):
        shard, member = item.split("@", 1)[1].rsplit("#", 1)
        return f"{member} in {shard}"
    if item.startswith("hf://"):
        address, root = item[len("hf://") :].split("@", 1)
        split, column, row = address.rsplit("/", 2)
        return f"row {row} of split '{split}' (column '{column}') of the dataset {root}"
    return item


def decode_into(
    path: str,
    shape: tuple[int, int, int, int],
    start: int,
    files: Sequence[str],
    size: int,
    interpolation: str,
    mode: str,
    dataset: str,
) -> int:
    """Decode `files` into rows start.. of the memory-mapped store at `path` (a decode task of a store build,
    run in a worker process or thread); returns how many it wrote."""
    store = np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)
    for offset, file in enumerate(files):
        store[start + offset] = decode_image(file, size, dataset, interpolation, mode).transpose(2, 0, 1)
    store.flush()
    del store
    return len(files)
