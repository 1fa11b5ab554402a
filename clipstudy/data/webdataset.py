"""WebDataset tar shards as the CLIP ecosystem stores them: `data.name: webdataset`,
`data.root: "shards/train-{000..009}.tar"`.

A sample is the members of a shard that share a key (the member's path up to the first dot of its file
name): `000123.jpg` and `000123.cls` are the image and the label (an integer as text) of sample `000123`;
`data.image_key` / `data.label_key` name other extensions. Shards are indexed once (tar headers only, and the
small label members); images are read by offset when the decoded-image store is built, so nothing is
unpacked. Class names come from `classnames.txt` beside the first shard (one per line, in label order),
else `class 0`, `class 1`, ...
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import FileSplit, Source, register_dataset
from clipstudy.data.decode import tar_item
from clipstudy.data.templates import GENERIC_TEMPLATES
from clipstudy.errors import DataError

IMAGE_KEYS = "jpg;jpeg;png;webp"
LABEL_KEY = "cls"
BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shards(pattern: str) -> list[str]:
    """`train-{000..009}.tar` -> the ten names, zero-padded as written; several ranges multiply."""
    match = BRACES.search(pattern)
    if match is None:
        return [pattern]
    low, high = match.groups()
    width = len(low) if low.startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for i in range(int(low), int(high) + 1) for name in expand_shards(f"{head}{i:0{width}d}{tail}")]


@dataclass
class Sample:
    image: tuple[int, int, str] | None = None
    """(offset, size, member name) of the image member."""
    label: int | None = None


def index_shard(shard: str, image_keys: list[str], label_key: str) -> dict[str, Sample]:
    """The samples of one shard by key, in shard order."""
    samples: dict[str, Sample] = {}
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if not dot or name.startswith("."):
                    continue
                sample = samples.setdefault(f"{folder}/{stem}", Sample())
                if extension.lower() in image_keys and sample.image is None:
                    sample.image = (member.offset_data, member.size, member.name)
                elif extension.lower() == label_key:
                    text = tar.extractfile(member).read().decode().strip()
                    try:
                        sample.label = int(text)
                    except ValueError:
                        raise DataError(
                            f"webdataset: {member.name} in {shard} holds {text[:40]!r}, not an integer label; "
                            f"set data.label_key to the member that holds the class index"
                        ) from None
    except (tarfile.TarError, OSError) as error:
        raise DataError(f"webdataset: cannot read shard {shard} ({error}); replace or remove it") from None
    return samples


def shard_split(pattern: str, cfg: DataConfig, size: int) -> FileSplit:
    shards = [os.path.expanduser(s) for s in expand_shards(pattern)]
    missing = [s for s in shards if not os.path.isfile(s)]
    if missing:
        raise DataError(
            f"webdataset: {len(missing)} of the {len(shards)} shards of {pattern} are missing (first: {missing[0]}); "
            f"point data.root at the shards, with a brace range such as shards/train-{{000..009}}.tar"
        )
    image_keys = (cfg.image_key or IMAGE_KEYS).lower().split(";")
    label_key = (cfg.label_key or LABEL_KEY).lower()
    items, labels = [], []
    identity = hashlib.blake2b(digest_size=12)
    for shard in shards:
        stat = os.stat(shard)
        identity.update(f"{shard}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        for key, sample in index_shard(shard, image_keys, label_key).items():
            if sample.image is None or sample.label is None:
                lacks = f"an image ({'/'.join(image_keys)})" if sample.image is None else f"a label (.{label_key})"
                raise DataError(
                    f"webdataset: sample {key} in {shard} has no {lacks}; set data.image_key / data.label_key to the "
                    f"extensions the shards use"
                )
            items.append(tar_item(shard, *sample.image))
            labels.append(sample.label)
    if not items:
        raise DataError(f"webdataset: the shards of {pattern} hold no samples")
    return FileSplit(items, torch.tensor(labels, dtype=torch.int64), size, "webdataset", identity.hexdigest())


def classnames_beside(pattern: str, count: int) -> list[str]:
    names_file = Path(os.path.expanduser(expand_shards(pattern)[0])).parent / "classnames.txt"
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(names) < count:
            raise DataError(f"webdataset: {names_file} names {len(names)} classes but the labels go up to {count - 1}")
        return names
    return [f"class {i}" for i in range(count)]


@register_dataset("webdataset", origin="local")
def load_webdataset(cfg: DataConfig, image_size: int) -> Source:
    size = cfg.image_size or image_size
    train = shard_split(cfg.root, cfg, size)
    val = shard_split(cfg.val_root, cfg, size) if cfg.val_root else None
    test = shard_split(cfg.test_root, cfg, size) if cfg.test_root else None
    count = 1 + max(int(split.labels.max()) for split in (train, val, test) if split is not None)
    return Source(classnames_beside(cfg.root, count), list(GENERIC_TEMPLATES), train, val, test)
