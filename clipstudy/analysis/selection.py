"""Which trials represent an arm: its best completed trial on validation (test never selects), status counts."""

from __future__ import annotations

import pandas as pd

from clipstudy.tracking.schema import ARM_COLUMN, STATUS_COLUMN, STATUSES


def selection_score(trials: pd.DataFrame, metric: str = "val/acc") -> pd.Series:
    """Each trial's best validation value: the recorded best for completed trials, else the last one."""
    best, last = f"metrics.best_{metric}", f"metrics.{metric}"
    score = trials[best] if best in trials else pd.Series(float("nan"), index=trials.index)
    return score.fillna(trials[last]) if last in trials else score


def best_trials(trials: pd.DataFrame, metric: str = "val/acc", mode: str = "max") -> pd.DataFrame:
    """One row per arm: its completed trial with the best validation metric (test never selects)."""
    done = trials[trials.get(STATUS_COLUMN) == "completed"].copy() if STATUS_COLUMN in trials else trials.iloc[0:0]
    if done.empty:
        return done
    done["selection"] = selection_score(done, metric)
    done = done.dropna(subset=["selection"]).sort_values("selection", ascending=mode == "min")
    return done.groupby(ARM_COLUMN, sort=True).head(1).set_index(ARM_COLUMN)


def status_counts(trials: pd.DataFrame) -> pd.DataFrame:
    if trials.empty:
        return pd.DataFrame(columns=list(STATUSES))
    counts = trials.groupby([ARM_COLUMN, STATUS_COLUMN]).size().unstack(fill_value=0)
    return counts.reindex(columns=list(STATUSES), fill_value=0)


def study_order(trials: pd.DataFrame) -> list[str]:
    """The arms in the order the study ran them (its file's order: arms run one after another), by their first
    trial's start; by name where start times are missing."""
    if "start_time" not in trials or trials.start_time.isna().all():
        return sorted(trials[ARM_COLUMN].dropna().unique())
    first = trials.groupby(ARM_COLUMN).start_time.min()
    return sorted(first.index, key=lambda arm: (pd.isna(first[arm]), first[arm], arm))
