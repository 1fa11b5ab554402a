"""Reading a Hugging Face dataset on disk: the split a store build reads rows from (apart from the loader in
`hf.py`, so that decoding imports no dataset registry)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from clipstudy.errors import DataError


@cache
def open_hf_dataset(root: str) -> Any:
    """The DatasetDict at `root` (a bare Dataset becomes its `train` split), opened once per process."""
    try:
        import datasets
    except ImportError:
        raise DataError("data.name: hf needs Hugging Face datasets: pip install 'clipstudy[data]'") from None
    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"hf: data.root {root} is not a folder; point it at a save_to_disk folder or a dataset folder")
    saved = any((folder / name).is_file() for name in ("dataset_dict.json", "state.json"))
    try:
        found = datasets.load_from_disk(root) if saved else datasets.load_dataset(root)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        raise DataError(
            f"hf: cannot open the dataset at {root} ({error}); point data.root at a folder written by save_to_disk "
            f"or holding the dataset's files (parquet, arrow, an image folder)"
        ) from None
    return found if isinstance(found, datasets.DatasetDict) else datasets.DatasetDict(train=found)


@cache
def hf_images(root: str, split: str, column: str) -> Any:
    """The split of a Hugging Face dataset on disk with its image column undecoded (bytes and path): opened
    once per process (Arrow files, memory-mapped)."""
    from datasets import Image as ImageFeature

    return open_hf_dataset(root)[split].cast_column(column, ImageFeature(decode=False))
