"""Reading the record for the analysis: a study's runs and metric histories as pandas frames, its artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from clipstudy.tracking import store
from clipstudy.tracking.schema import PARENT, PARENT_COLUMN, ROLE, ROLE_TRIAL, TRIAL_ID_COLUMN

__all__ = ["download_artifact", "metric_histories", "study_experiment_id", "study_runs", "trial_runs"]

_BASE_COLUMNS = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]


def study_experiment_id(uri: str, study_name: str) -> str:
    """The id of a study's experiment; an error listing the known studies if the store has none by that name."""
    return store.experiment_id(store.client(uri), uri, study_name, create=False)


def study_runs(uri: str, study_name: str) -> pd.DataFrame:
    """The study's invocations (its parent runs), newest first, in the same layout as `trial_runs`."""
    client = store.client(uri)
    experiment_id = store.experiment_id(client, uri, study_name, create=False)
    return _runs_frame(store.study_parent_runs(client, experiment_id, limit=1000))


def trial_runs(uri: str, study_name: str, parent_run_id: str | None = None) -> pd.DataFrame:
    """The trial runs of a study, one row per trial, in `mlflow.search_runs`' pandas layout.

    Columns: run_id, experiment_id, status, artifact_uri, start_time, end_time, `metrics.<name>`,
    `params.<name>`, `tags.<name>`. `parent_run_id` restricts to one invocation of the study.
    """
    client = store.client(uri)
    experiment_id = store.experiment_id(client, uri, study_name, create=False)
    query = store.tag_filter(ROLE, ROLE_TRIAL)
    if parent_run_id is not None:
        query += f" and {store.tag_filter(PARENT, parent_run_id)}"
    frame = _runs_frame(store.search_all(client, experiment_id, query))
    if not frame.empty:  # one row per (parent, trial): a lost race could have made a second run
        frame = frame.drop_duplicates([PARENT_COLUMN, TRIAL_ID_COLUMN], keep="first").reset_index(drop=True)
    return frame


def _runs_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "artifact_uri": run.info.artifact_uri,
            "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(run.info.end_time, unit="ms", utc=True),
        }
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else _BASE_COLUMNS)
    rest = sorted(c for c in frame.columns if c not in _BASE_COLUMNS)
    return frame[_BASE_COLUMNS + rest]


def metric_histories(uri: str, run_ids: list[str], keys: tuple[str, ...]) -> pd.DataFrame:
    """Every logged value of `keys` for the runs: columns run_id, key, step, value (sorted by step)."""
    client = store.client(uri)
    rows = [
        (run_id, key, m.step, m.value)
        for run_id in run_ids
        for key in keys
        for m in store.retry(lambda run_id=run_id, key=key: client.get_metric_history(run_id, key))
    ]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])
    return frame.sort_values(["run_id", "key", "step"], kind="stable").reset_index(drop=True)


def download_artifact(uri: str, run_id: str, path: str, destination: str | Path) -> Path | None:
    """Fetch one artifact of a run into `destination`; None when the run has no such artifact."""
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(destination), tracking_uri=uri
        )
    except (OSError, MlflowException):
        return None
    return Path(local)
