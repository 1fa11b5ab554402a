"""An on-disk cache of frozen-backbone features, shared by every trial on the machine.

Entries are `<root>/<sha256 of the key>.safetensors` plus `<hash>.json` holding the key for humans.
Writes go to a temporary file in the same folder and are renamed into place (`os.replace` is atomic),
so trials computing the same entry at once never see a partial file: the last writer simply wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)
_TENSOR = "features"


class FeatureCache:
    def __init__(self, root: str | Path):
        self.root = Path(os.path.expanduser(str(root)))
        self.hits = 0
        self.misses = 0

    @staticmethod
    def digest(key: dict[str, Any]) -> str:
        """sha256 of the key as sorted JSON (non-JSON values by their str)."""
        text = json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: dict[str, Any]) -> Path:
        return self.root / f"{self.digest(key)}.safetensors"

    def load_or_compute(self, key: dict[str, Any], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached tensor for `key`, or `compute()`'s result, stored first; always a CPU tensor."""
        path = self.path(key)
        if path.is_file():
            try:
                features = load_file(path)[_TENSOR]
            except (SafetensorError, OSError, KeyError) as error:
                log.warning("feature cache entry %s is unreadable (%s); recomputing it", path, error)
            else:
                self.hits += 1
                return features
        self.misses += 1
        features = compute().detach().cpu().contiguous()
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda tmp: save_file({_TENSOR: features}, tmp))
        text = json.dumps(key, sort_keys=True, default=str, indent=2) + "\n"
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
        return features


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
