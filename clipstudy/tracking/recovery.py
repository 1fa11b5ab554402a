"""Recovering the record after a stop or crash: trial runs left open, trials that died, completed runs Tune lost."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import mlflow
from mlflow.entities import Run, RunTag

from clipstudy.config import TrialConfig, flatten
from clipstudy.tracking import runs, store
from clipstudy.tracking.schema import (
    ADOPTED,
    ARM,
    FAILED_FOR_GOOD,
    FINAL_STATUSES,
    PARENT,
    REASON,
    ROLE,
    ROLE_TRIAL,
    STATUS,
    TRIAL_ID,
)

__all__ = [
    "INTERRUPTED",
    "TUNE_ENDED",
    "adopt_completed_run",
    "close_interrupted_trials",
    "completed_trial",
    "failed_for_good",
    "mark_failed_if_running",
    "mark_trials_killed",
    "unclaimed_completed_runs",
]

INTERRUPTED = "interrupted: the study driver stopped before this trial was checkpointed; resumed as a new trial"
"""The failure reason of a trial run whose trial Tune will never run again."""
TUNE_ENDED = "trial errored, or ended without recording its result, before the study driver stopped (see the Ray logs)"
"""The failure reason of a trial run whose trial Tune had ended without its outcome being recorded."""


def mark_failed_if_running(uri: str, run_id: str, reason: str) -> bool:
    """Mark a trial failed (with `reason`) unless it already has an outcome; return whether it was marked.

    For the driver, which learns of a dead trial late: a trial that recorded its own failure (and reason),
    or its completion, keeps it.
    """
    run = store.retry(lambda: store.client(uri).get_run(run_id))
    if run.data.tags.get(STATUS, "running") in FINAL_STATUSES:
        return False
    runs.set_status(uri, run_id, "failed", reason)
    return True


def close_interrupted_trials(uri: str, parent_run_id: str, arm: str, known: Mapping[str, str | None]) -> list[str]:
    """Close the arm's trial runs left open by a stopped driver that no trial will continue; return their ids.

    Call on resume, before the arm's trials run: nothing writes to them then. `known` maps the trial ids
    of the restored Tune experiment to the outcome Tune recorded for them (`pruned`, `failed`), or to
    None for trials Tune will continue. A run still open (RUNNING, or KILLED by a Ctrl-C):
    - that had recorded its outcome keeps it (the driver stopped between recording it and ending the run);
    - whose trial Tune had finished gets Tune's outcome (the driver stopped before its callback recorded it);
    - whose trial Tune does not know belongs to a trial Tune will never run again (its driver stopped
      before it checkpointed that trial; it proposes a new one instead): failed, with `INTERRUPTED`.
    """
    client = store.client(uri)
    closed = []
    for run in _open_trial_runs(client, parent_run_id):
        tags = run.data.tags
        trial = tags.get(TRIAL_ID)
        if tags.get(ROLE) != ROLE_TRIAL or tags.get(ARM) != arm or (trial in known and known[trial] is None):
            continue
        outcome = tags.get(STATUS, "running")
        if outcome in FINAL_STATUSES:
            store.retry(
                lambda run=run, outcome=outcome: client.set_terminated(run.info.run_id, FINAL_STATUSES[outcome])
            )
        elif trial in known and known[trial] == "pruned":
            runs.set_status(uri, run.info.run_id, "pruned")
        elif trial in known:
            runs.set_status(uri, run.info.run_id, "failed", TUNE_ENDED)
        else:
            runs.set_status(uri, run.info.run_id, "failed", INTERRUPTED)
        closed.append(run.info.run_id)
    return closed


def mark_trials_killed(uri: str, parent_run_id: str) -> list[str]:
    """End the study's trial runs still open as KILLED (the user stopped the study); return their ids.

    Their `clipstudy.status` stays `running`: `--resume` continues them (or closes them, see
    `close_interrupted_trials`), and reopens the runs it continues.
    """
    client = store.client(uri)
    killed = []
    for run in _open_trial_runs(client, parent_run_id):
        if run.info.status == "RUNNING":
            store.retry(lambda run=run: client.set_terminated(run.info.run_id, status="KILLED"))
            killed.append(run.info.run_id)
    return killed


def _open_trial_runs(client: mlflow.MlflowClient, parent_run_id: str) -> list[Run]:
    """The parent's runs whose trial has no outcome yet: still RUNNING (a killed driver), or KILLED (Ctrl-C)."""
    experiment_id = store.retry(lambda: client.get_run(parent_run_id)).info.experiment_id
    found = []
    for status in ("RUNNING", "KILLED"):
        query = f"{store.tag_filter(PARENT, parent_run_id)} and attributes.status = '{status}'"
        found += store.search_all(client, experiment_id, query)
    return found


def completed_trial(uri: str, study_name: str, parent_run_id: str, trial_id: str) -> dict[str, float] | None:
    """The recorded metrics of a trial that already completed (with `epoch` = its last epoch), else None.

    A study killed right after a trial finished may not have told Tune so; on resume that trial must
    be reported as it was, not trained again.
    """
    client = store.client(uri)
    run = _trial_run(client, uri, study_name, parent_run_id, trial_id)
    if run is None or run.data.tags.get(STATUS) != "completed":
        return None
    return _recorded_result(client, run)


def failed_for_good(uri: str, study_name: str, parent_run_id: str, trial_id: str) -> str | None:
    """The failure reason of a trial whose run failed on an error a retry would repeat, else None."""
    run = _trial_run(store.client(uri), uri, study_name, parent_run_id, trial_id)
    if run is None or run.data.tags.get(FAILED_FOR_GOOD) != "true":
        return None
    return run.data.tags.get(REASON, "failed")


def _trial_run(client: mlflow.MlflowClient, uri: str, study_name: str, parent_run_id: str, trial_id: str) -> Run | None:
    experiment_id = store.experiment_id(client, uri, study_name, create=True)
    return runs.find_trial_run(client, experiment_id, parent_run_id, trial_id)


def unclaimed_completed_runs(uri: str, parent_run_id: str, arm: str, known: Collection[str]) -> list[str]:
    """The arm's completed trial runs whose trials the restored Tune experiment does not know.

    A trial that started and finished between two snapshots of Tune's experiment state is lost to Tune
    when the driver stops then: on resume Tune proposes a trial in its place. When that trial has the
    same config (always, for an arm without a search), it takes the finished run over (`adopt_completed_run`)
    instead of training again.
    """
    client = store.client(uri)
    experiment_id = store.retry(lambda: client.get_run(parent_run_id)).info.experiment_id
    query = " and ".join(
        (store.tag_filter(PARENT, parent_run_id), store.tag_filter(ARM, arm), store.tag_filter(STATUS, "completed"))
    )
    completed = store.search_all(client, experiment_id, query)
    return [run.info.run_id for run in completed if run.data.tags.get(TRIAL_ID) not in known]


def adopt_completed_run(uri: str, run_id: str, trial_id: str, config: TrialConfig) -> dict[str, float] | None:
    """Give the completed run `run_id` to trial `trial_id` if it recorded exactly `config` (and no other trial
    took it over first); return its recorded result, else None. The run keeps its old trial id in `ADOPTED`."""
    client = store.client(uri)
    run = store.retry(lambda: client.get_run(run_id))
    params = {key: str(value) for key, value in flatten(config.model_dump(mode="json")).items()}
    if ADOPTED in run.data.tags or run.data.params != params:
        return None
    tags = [RunTag(ADOPTED, run.data.tags.get(TRIAL_ID, "")), RunTag(TRIAL_ID, trial_id)]
    store.retry(lambda: client.log_batch(run_id, tags=tags))
    return _recorded_result(client, run)


def _recorded_result(client: mlflow.MlflowClient, run: Run) -> dict[str, float]:
    """A completed run's final metrics, with `epoch` = the last step of its `val/acc` history."""
    history = store.retry(lambda: client.get_metric_history(run.info.run_id, "val/acc"))
    return {**run.data.metrics, "epoch": max((m.step for m in history), default=0)}
