"""Can a trial's inputs be had on this machine? Asked once before a study starts its trials here.

Without it, weights that are neither cached nor downloadable, or a dataset that is missing, fail every trial
of every arm (each one retried), and the study ends as if it had run. The check runs what a trial runs: the
model is built (its weights found or fetched) and each dataset opened (files listed, nothing decoded), so
its errors are the trial's own, and a download happens once, here, not in every trial at once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

from clipstudy.config import TrialConfig
from clipstudy.data import check_available
from clipstudy.engine.transfer import retention_data
from clipstudy.errors import DataError, ModelError
from clipstudy.models.build import build_model


def check_inputs(configs: Iterable[tuple[str, TrialConfig]]) -> None:
    """Check each distinct model and dataset of the (arm name, config) pairs; the first problem is raised as the
    trial would raise it, prefixed with its arm."""
    sizes: dict[str, int] = {}
    opened: set[tuple[str, int]] = set()
    for arm, cfg in configs:
        try:
            size = _image_size(cfg, sizes)
            for data in [cfg.data, *retention_data(cfg)]:
                if (key := (data.model_dump_json(), size)) not in opened:
                    check_available(data, size)
                    opened.add(key)
        except (DataError, ModelError) as error:
            raise type(error)(f"arm '{arm}': {error}") from error


def _image_size(cfg: TrialConfig, sizes: dict[str, int]) -> int:
    """The model's input size, from building it on the CPU (once per distinct model config) and letting it go."""
    key = cfg.model.model_dump_json()
    if key not in sizes:
        built = build_model(cfg.model)
        sizes[key] = built.image_size
        del built
        gc.collect()
    return sizes[key]
