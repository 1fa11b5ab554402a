"""Writing the record: a study's parent run, its trial runs, and their params, metrics, tags and artifacts."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.entities import Metric, Param, Run, RunTag

from clipstudy.config import TrialConfig, flatten
from clipstudy.tracking import store
from clipstudy.tracking.provenance import provenance_tags
from clipstudy.tracking.schema import (
    ARM,
    FAILED_FOR_GOOD,
    FINAL_STATUSES,
    GPU_IDS,
    METHOD,
    PARENT,
    REASON,
    RESOURCES,
    ROLE,
    ROLE_STUDY,
    ROLE_TRIAL,
    RUNTIME,
    STATUS,
    STUDY_ARTIFACT_DIR,
    TRIAL_ID,
)

if TYPE_CHECKING:
    from clipstudy.engine import TrialResult

__all__ = [
    "find_trial_run",
    "finish_study_run",
    "log_epoch",
    "log_folder",
    "log_gpu_ids",
    "log_result",
    "log_runtime",
    "log_text",
    "set_experiment_tag",
    "set_status",
    "start_study_run",
    "trial_run",
]

# MLflow's batch limits (per log_batch request).
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


def start_study_run(
    uri: str, study_name: str, study_file: str | Path | None, resume: bool, extra_tags: dict | None = None
) -> str:
    """Create (or, with `resume`, reopen the latest) parent run of a study; return its id."""
    client = store.client(uri)
    experiment_id = store.experiment_id(client, uri, study_name, create=True)
    tags = {ROLE: ROLE_STUDY, **provenance_tags(), **{str(k): str(v) for k, v in (extra_tags or {}).items()}}
    run_id = None
    if resume:
        latest = store.study_parent_runs(client, experiment_id, limit=1)
        if latest:
            run_id = latest[0].info.run_id
            store.retry(lambda: client.update_run(run_id, status="RUNNING"))
    if run_id is None:
        run = store.retry(lambda: client.create_run(experiment_id, tags={ROLE: ROLE_STUDY}, run_name=study_name))
        run_id = run.info.run_id
    store.retry(lambda: client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()]))
    if study_file is not None:
        store.retry(lambda: client.log_artifact(run_id, str(study_file), artifact_path=STUDY_ARTIFACT_DIR))
    return run_id


def finish_study_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Terminate the parent run (`FINISHED`, `FAILED` or `KILLED`)."""
    store.retry(lambda: store.client(uri).set_terminated(run_id, status=status))


def trial_run(
    uri: str,
    study_name: str,
    parent_run_id: str,
    arm: str,
    method: str,
    trial_id: str,
    config: TrialConfig,
    resources: dict[str, float] | None = None,
) -> str:
    """The child run of one Tune trial: the existing one for (parent, trial_id), else a new one.

    `resources` (cpus, gpus, workers) are tagged so the report can count the compute a trial held.
    """
    client = store.client(uri)
    parent = store.retry(lambda: client.get_run(parent_run_id))
    experiment_id = parent.info.experiment_id
    existing = find_trial_run(client, experiment_id, parent_run_id, trial_id)
    if existing is not None:
        if existing.info.status != "RUNNING":  # a trial run again (resume, Tune retry)
            store.retry(lambda: client.update_run(existing.info.run_id, status="RUNNING"))
            store.retry(lambda: client.set_tag(existing.info.run_id, STATUS, "running"))
        return existing.info.run_id
    tags = {
        PARENT: parent_run_id,
        ROLE: ROLE_TRIAL,
        ARM: arm,
        METHOD: method,
        TRIAL_ID: trial_id,
        STATUS: "running",
        **{f"{RESOURCES}.{key}": str(value) for key, value in (resources or {}).items()},
        **provenance_tags(),
    }
    run = store.retry(lambda: client.create_run(experiment_id, tags=tags, run_name=f"{arm}/{trial_id}"))
    run_id = run.info.run_id
    params = [Param(key, str(value)) for key, value in flatten(config.model_dump(mode="json")).items()]
    for start in range(0, len(params), _MAX_PARAMS_PER_BATCH):
        chunk = params[start : start + _MAX_PARAMS_PER_BATCH]
        store.retry(lambda chunk=chunk: client.log_batch(run_id, params=chunk))
    return run_id


def find_trial_run(client: mlflow.MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> Run | None:
    """The first run of trial `trial_id` under the parent run, if any."""
    query = f"{store.tag_filter(TRIAL_ID, trial_id)} and {store.tag_filter(PARENT, parent_run_id)}"
    found = store.retry(
        lambda: client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    )
    return found[0] if found else None


def log_epoch(uri: str, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    """Log one epoch's numeric values (all but `epoch`) at step=epoch, in one batch."""
    _log_metrics(uri, run_id, _numeric(metrics, skip=("epoch",)), int(epoch))


def log_result(uri: str, run_id: str, result: TrialResult) -> None:
    """Log the final metrics (at the last epoch's step), the result's curves (at their own steps) and the
    result files as artifacts."""
    from clipstudy.tracking.artifacts import write_result  # imports the engine (torch): only when a result is logged

    last = int(result.history[-1].get("epoch", len(result.history) - 1)) if result.history else 0
    _log_metrics(uri, run_id, _numeric(result.metrics), last)
    _log_curves(uri, run_id, result.curves)
    with tempfile.TemporaryDirectory(prefix="clipstudy-result-") as folder:
        write_result(result, folder)
        store.retry(lambda: store.client(uri).log_artifacts(run_id, folder))


def _numeric(metrics: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[str(key)] = float(value)
    return out


def _log_metrics(uri: str, run_id: str, values: dict[str, float], step: int) -> None:
    stamp = int(time.time() * 1000)
    _log_batches(uri, run_id, [Metric(key, value, stamp, step) for key, value in values.items()])


def _log_curves(uri: str, run_id: str, curves: dict[str, list[tuple[int, float]]]) -> None:
    """Series with their own steps (e.g. the WiSE-FT α curve, step = round(100·α)) as metric histories."""
    stamp = int(time.time() * 1000)
    points = [Metric(key, float(value), stamp, int(step)) for key, series in curves.items() for step, value in series]
    _log_batches(uri, run_id, points)


def _log_batches(uri: str, run_id: str, metrics: list[Metric]) -> None:
    client = store.client(uri)
    for start in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
        chunk = metrics[start : start + _MAX_METRICS_PER_BATCH]
        store.retry(lambda chunk=chunk: client.log_batch(run_id, metrics=chunk))


def log_folder(uri: str, run_id: str, folder: str | Path, artifact_path: str) -> None:
    """Attach a folder's files to a run (e.g. a report on the study's parent run)."""
    store.retry(lambda: store.client(uri).log_artifacts(run_id, str(folder), artifact_path=artifact_path))


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    """Attach `text` to a run as the artifact `artifact_file`."""
    store.retry(lambda: store.client(uri).log_text(run_id, text, artifact_file))


def log_gpu_ids(uri: str, run_id: str, per_worker: list[list[str]]) -> None:
    """Tag the GPU ids each worker of a trial was given (`GPU_IDS`); nothing for trials without GPUs."""
    if any(per_worker):
        value = ";".join(",".join(ids) for ids in per_worker)
        store.retry(lambda: store.client(uri).set_tag(run_id, GPU_IDS, value))


def log_runtime(uri: str, run_id: str, runtime: Mapping[str, str]) -> None:
    """Tag what the trial runs on (`RUNTIME`.device, .precision)."""
    tags = [RunTag(f"{RUNTIME}.{key}", str(value)) for key, value in runtime.items()]
    store.retry(lambda: store.client(uri).log_batch(run_id, tags=tags))


def set_status(uri: str, run_id: str, status: str, reason: str | None = None, for_good: bool = False) -> None:
    """Tag the trial's outcome (completed/pruned/failed, and why) and terminate its MLflow run; `for_good`
    marks a failure that a retry would repeat (`FAILED_FOR_GOOD`)."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
    client = store.client(uri)
    tags = [RunTag(STATUS, status)]
    if reason is not None:
        tags.append(RunTag(REASON, str(reason)[:5000]))
    if for_good:
        tags.append(RunTag(FAILED_FOR_GOOD, "true"))
    store.retry(lambda: client.log_batch(run_id, tags=tags))
    if reason is None and status != "failed":
        run = store.retry(lambda: client.get_run(run_id))
        for key in (REASON, FAILED_FOR_GOOD):  # left over from an earlier failed attempt of a retried trial
            if key in run.data.tags:
                store.retry(lambda key=key: client.delete_tag(run_id, key))
    store.retry(lambda: client.set_terminated(run_id, status=FINAL_STATUSES[status]))


def set_experiment_tag(uri: str, experiment_id: str, key: str, value: str) -> None:
    """Tag an experiment (e.g. with a view of its runs table for the MLflow UI)."""
    store.retry(lambda: store.client(uri).set_experiment_tag(experiment_id, key, value))
