"""The names in the MLflow record (DESIGN.md, "MLflow record"): tags, statuses, artifacts, runs-frame columns."""

from __future__ import annotations

__all__ = [
    "ADOPTED",
    "ADOPTED_COLUMN",
    "ARM",
    "ARM_COLUMN",
    "ARTIFACTS",
    "CONFIG_FILE",
    "CONFUSION_FILE",
    "DB_FILENAME",
    "FAILED_FOR_GOOD",
    "FAILURE_FILE",
    "FINAL_STATUSES",
    "GIT_COMMIT",
    "GIT_DIRTY",
    "GPU_IDS",
    "GPU_IDS_COLUMN",
    "HISTORY_FILE",
    "METHOD",
    "METHOD_COLUMN",
    "METRICS_FILE",
    "PARENT",
    "PARENT_COLUMN",
    "PER_CLASS_FILE",
    "REASON",
    "REASON_COLUMN",
    "RESOURCES",
    "RESOURCES_COLUMN",
    "ROLE",
    "ROLE_COLUMN",
    "ROLE_STUDY",
    "ROLE_TRIAL",
    "RUNTIME",
    "RUNTIME_COLUMN",
    "STATUS",
    "STATUSES",
    "STATUS_COLUMN",
    "STUDY_ARTIFACT_DIR",
    "TRIAL_ID",
    "TRIAL_ID_COLUMN",
    "VERSION",
    "WEIGHTS_FILE",
]

# ------------------------------------------------------------------------------------------------ tags

ROLE = "clipstudy.role"
"""`ROLE_STUDY` on a study's parent run (one per invocation), `ROLE_TRIAL` on its child runs (one per trial)."""
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"
ARM = "clipstudy.arm"
METHOD = "clipstudy.method"
TRIAL_ID = "clipstudy.trial_id"
STATUS = "clipstudy.status"
"""A trial's outcome, one of `STATUSES`; `running` while it has none."""
REASON = "clipstudy.failure_reason"
FAILED_FOR_GOOD = "clipstudy.failed_for_good"
"""`true` on a trial that failed on clipstudy's own error (a non-finite loss, an invalid config): run again, from
its last checkpoint, it would fail the same way on any node, so a retry of it ends at once."""
RESOURCES = "clipstudy.resources"
"""Prefix of the per-trial resource tags (`.cpus`, `.gpus`, `.workers`): what compute-hours are counted in."""
GPU_IDS = f"{RESOURCES}.gpu_ids"
"""The GPUs Ray assigned to a trial, as its node numbers them: per worker in rank order, `;` between workers
and `,` within one (e.g. `0` for a trial alone on GPU 0, `0;0` for two workers sharing it)."""
RUNTIME = "clipstudy.runtime"
"""Prefix of the tags of what a trial really ran on: `.device` (`cpu`, `cuda (NVIDIA H100 80GB HBM3)`) and
`.precision` (`bf16`, `fp16`, `fp32`), with `auto` resolved."""
PARENT = "mlflow.parentRunId"
ADOPTED = "clipstudy.adopted_from"
"""On a trial run taken over on resume by a new Tune trial with the same config: the trial id it had."""
GIT_COMMIT = "clipstudy.git_commit"
GIT_DIRTY = "clipstudy.git_dirty"
VERSION = "clipstudy.version"
"""Prefix of the package version tags (`.torch`, `.mlflow`, ...)."""

# -------------------------------------------------------------------------------------------- statuses

FINAL_STATUSES = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
"""A trial's outcome (`STATUS`) -> the MLflow status its run ends with."""
STATUSES = tuple(FINAL_STATUSES)

# ------------------------------------------------------------------------------------------- artifacts

PER_CLASS_FILE = "per_class.csv"
CONFUSION_FILE = "confusion_matrix.csv"
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
ARTIFACTS = (PER_CLASS_FILE, CONFUSION_FILE, WEIGHTS_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE)
"""The files of a completed trial's result."""
FAILURE_FILE = "failure.txt"
"""Artifact of a failed trial: the whole error, traceback included (the reason tag has one line of it)."""
STUDY_ARTIFACT_DIR = "study"
"""Where the parent run keeps the study file."""
DB_FILENAME = "mlflow.db"
"""The embedded SQLite store, in the working directory."""

# --------------------------------------------------------------------------- columns of the runs frames

ROLE_COLUMN = f"tags.{ROLE}"
ARM_COLUMN = f"tags.{ARM}"
METHOD_COLUMN = f"tags.{METHOD}"
TRIAL_ID_COLUMN = f"tags.{TRIAL_ID}"
STATUS_COLUMN = f"tags.{STATUS}"
REASON_COLUMN = f"tags.{REASON}"
RESOURCES_COLUMN = f"tags.{RESOURCES}"
GPU_IDS_COLUMN = f"tags.{GPU_IDS}"
RUNTIME_COLUMN = f"tags.{RUNTIME}"
PARENT_COLUMN = f"tags.{PARENT}"
ADOPTED_COLUMN = f"tags.{ADOPTED}"
