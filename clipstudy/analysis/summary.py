"""The end-of-study summary on the console: best trial per arm (on validation), status counts, where results are."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from clipstudy.analysis.selection import best_trials, status_counts, study_order
from clipstudy.tracking.schema import ARM_COLUMN, METHOD_COLUMN, REASON_COLUMN, STATUS_COLUMN, STATUSES


def print_table(console: Console, table: Table) -> None:
    """Print whole: a console that is not a terminal (a log, CI, `ray job logs`) would cut it to 80 columns."""
    width = console.width
    if not console.is_terminal:
        console.width = max(width, console.measure(table, options=console.options.update_width(1000)).maximum)
    try:
        console.print(table)
    finally:
        console.width = width


def print_summary(
    console: Console, trials: pd.DataFrame, tracking_uri: str | None = None, study_ref: str | None = None
) -> None:
    """The table of best trials (by the study's metric, `trials.attrs`) and counts, where the record is, and the
    commands that open it."""
    metric, mode = trials.attrs.get("metric", "val/acc"), trials.attrs.get("mode", "max")
    best = best_trials(trials, metric, mode)
    counts = status_counts(trials)
    table = Table(
        "arm",
        "method",
        f"best {metric}",
        "test/acc",
        "trainable params",
        "completed",
        "pruned",
        "failed",
        title="best trial per arm (selected on validation)",
    )
    for arm in study_order(trials):
        row = best.loc[arm] if arm in best.index else None
        cells = ["n/a"] * 4
        if row is not None:
            cells = [
                str(row.get(METHOD_COLUMN, "")),
                f"{row['selection']:.4f}",
                f"{row.get('metrics.test/acc', float('nan')):.4f}",
                f"{int(row.get('metrics.trainable_params', 0)):,}",
            ]
        table.add_row(arm, *cells, *(str(int(counts.loc[arm, s])) for s in STATUSES))
    print_table(console, table)
    if tracking_uri:
        console.print(f"results: {tracking_uri}", highlight=False, soft_wrap=True)
    if study_ref:
        console.print(f"open the MLflow UI: clipstudy ui {study_ref}", highlight=False, soft_wrap=True)
        console.print(f"compare the arms: clipstudy report {study_ref}", highlight=False, soft_wrap=True)
    elif tracking_uri:
        console.print(f"open the MLflow UI: mlflow ui --backend-store-uri {tracking_uri}", highlight=False)


def failure_note(trials: pd.DataFrame, shown: int = 3) -> tuple[str | None, bool]:
    """(what to say about the failed trials of `trials`, whether every trial failed): their count and their
    distinct reasons, each with the arms it hit; (None, False) when none failed."""
    if trials.empty or STATUS_COLUMN not in trials:
        return None, False
    failed = trials[trials[STATUS_COLUMN] == "failed"]
    if failed.empty:
        return None, False
    reasons = failed.get(REASON_COLUMN, pd.Series("", index=failed.index)).fillna("").replace("", "no reason recorded")
    arms = failed[ARM_COLUMN].groupby(reasons, sort=False).unique()
    every = len(failed) == len(trials)
    head = f"{'every trial' if every else f'{len(failed)} of {len(trials)} trials'} failed ({len(failed)})"
    lines = [f"{head}:"] + [f"  {', '.join(map(str, names))}: {reason}" for reason, names in arms.head(shown).items()]
    if len(arms) > shown:
        lines.append(f"  ... and {len(arms) - shown} other reason(s): see each run's failure.txt")
    return "\n".join(lines), every
