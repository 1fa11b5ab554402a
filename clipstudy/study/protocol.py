"""What the trial driver, its worker and the progress lines agree on: report keys, logging.

Kept apart from `driver` and `worker` so that neither imports the other for a constant.
"""

from __future__ import annotations

import logging
from typing import Any

RUN_ID = "mlflow_run_id"
PLANNED = "epochs_planned"


def was_pruned(result: dict[str, Any] | None) -> bool:
    """A trial that stopped before its planned last epoch, without an error, was stopped by ASHA."""
    if not result or "epoch" not in result or PLANNED not in result:
        return False
    return result["epoch"] < result[PLANNED]


QUIET_LOGGERS = (
    "ray.train.v2.api.config",  # "Running in local mode" for every in-process trial
    "ray.train.v2._internal.execution.storage",  # "Checkpoint successfully created" every epoch
    "ray.train._internal.storage",
)


def quiet_ray_logs() -> None:
    """Keep Ray Train's per-trial and per-epoch INFO lines out of the study's console (warnings still show)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
