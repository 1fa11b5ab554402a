"""A study's MLflow record as pandas: its trial runs (one row each) and their per-epoch histories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clipstudy.errors import ConfigError
from clipstudy.tracking import read, store

HISTORY_KEYS = ("train/acc", "train/loss", "val/acc", "val/loss", "epoch_time_s", "throughput_img_s", "peak_mem_mb")


@dataclass
class StudyRecord:
    """What the report reads of one study invocation."""

    name: str
    tracking_uri: str
    parent_run_id: str | None
    """The invocation the trials belong to; None when the record spans every invocation."""
    parent_run_ids: list[str]
    trials: pd.DataFrame
    """One row per trial, `mlflow.search_runs`' layout: run_id, status, times, metrics.*, params.*, tags.*."""
    histories: pd.DataFrame
    """run_id, key, step, value: the per-epoch metrics of every trial (step = epoch, 0 = before training)."""

    def curve(self, run_id: str, key: str) -> pd.Series:
        """One trial's metric by epoch."""
        rows = self.histories[(self.histories.run_id == run_id) & (self.histories.key == key)]
        return pd.Series(rows.value.to_numpy(), index=rows.step.to_numpy(), name=key, dtype=float)


def resolve_study(ref: str, workdir: str | Path = ".", tracking_uri: str | None = None) -> tuple[str, str]:
    """(study name, tracking URI) for a study file path or a study (experiment) name."""
    path = Path(ref)
    if path.suffix in {".yaml", ".yml"} or path.is_file():
        from clipstudy.studyfile import load_study

        study = load_study(path)
        return study.name, tracking_uri or store.resolve_tracking_uri(study.tracking_uri, workdir)
    return ref, tracking_uri or store.resolve_tracking_uri(None, workdir)


def load_record(name: str, tracking_uri: str, invocation: str = "latest") -> StudyRecord:
    """Read a study: `invocation` is `latest` (its newest parent run), `all`, or a parent run id."""
    database = store.sqlite_file(tracking_uri)
    if database is not None and not database.exists():
        raise ConfigError(
            f"no MLflow store at {database}: run a study there first (`clipstudy run`), or point to its store "
            "with --workdir or --tracking-uri"
        )
    store.check_reachable(tracking_uri)
    parents = read.study_runs(tracking_uri, name)
    parent_ids = list(parents.run_id) if not parents.empty else []
    if invocation == "all":
        chosen = None
    elif invocation == "latest":
        if not parent_ids:
            raise ConfigError(f"study '{name}' in {tracking_uri} has no study run: run it with `clipstudy run`")
        chosen = parent_ids[0]
    elif invocation in parent_ids:
        chosen = invocation
    else:
        listing = ", ".join(parent_ids) or "none"
        raise ConfigError(f"study '{name}' has no invocation (parent run) '{invocation}'; its runs: {listing}")
    trials = read.trial_runs(tracking_uri, name, chosen)
    run_ids = list(trials.run_id) if not trials.empty else []
    histories = read.metric_histories(tracking_uri, run_ids, HISTORY_KEYS)
    kept = [chosen] if chosen else parent_ids
    return StudyRecord(name, tracking_uri, chosen, kept, trials, histories)
