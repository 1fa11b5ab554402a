"""The comparison tables: one row per arm (its val-best trial), per-class extremes, confusions, repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clipstudy.analysis.load import StudyRecord
from clipstudy.analysis.selection import best_trials, status_counts, study_order
from clipstudy.tracking.schema import (
    ARM_COLUMN,
    METHOD_COLUMN,
    RESOURCES_COLUMN,
    RUNTIME_COLUMN,
    STATUS_COLUMN,
    STATUSES,
)

SEED_PARAMS = ("params.train.seed", "params.data.split_seed", "params.data.shot_seed")
"""Params that only repeat a configuration; trials differing in nothing else are averaged."""
ARM_COLUMNS = [
    "study",
    "arm",
    "method",
    "test_acc",
    "test_acc5",
    "test_macro_f1",
    "best_val_acc",
    "epoch1_train_acc",
    "epoch1_val_acc",
    "trainable_params",
    "trainable_pct",
    "epoch_time_s",
    "throughput_img_s",
    "peak_mem_mb",
    "runs_on",
    "compute_h",
    "compute_unit",
    *STATUSES,
    "run_id",
]


def _num(row: pd.Series | None, key: str) -> float:
    if row is None or key not in row or pd.isna(row[key]):
        return float("nan")
    return float(row[key])


def trial_compute(record: StudyRecord) -> pd.DataFrame:
    """Per trial: wall-clock hours held × devices held, in GPU-hours or CPU-hours (index: run_id).

    A trial holds its resources from start to end, pruned or failed ones included. A trial with no end
    (still running, or its driver was killed) counts the time of the epochs it logged.
    """
    trials = record.trials
    if trials.empty:
        return pd.DataFrame(columns=["hours", "unit"])
    seconds = (trials.end_time - trials.start_time).dt.total_seconds()
    times = record.histories[record.histories.key == "epoch_time_s"].groupby("run_id").value.sum()
    seconds = seconds.fillna(trials.run_id.map(times)).fillna(0.0)

    def tag(name: str, default: float) -> pd.Series:
        column = f"{RESOURCES_COLUMN}.{name}"
        values = trials[column] if column in trials else pd.Series(np.nan, index=trials.index)
        return pd.to_numeric(values, errors="coerce").fillna(default)

    gpus, cpus, workers = tag("gpus", 0.0), tag("cpus", 1.0), tag("workers", 1.0)
    column = f"{RESOURCES_COLUMN}.workers"
    known = trials[column].notna().to_numpy() if column in trials else np.zeros(len(trials), dtype=bool)
    devices = np.where(gpus > 0, gpus, cpus) * workers
    unit = np.where(known, np.where(gpus > 0, "GPU-h", "CPU-h"), "device-h")
    frame = pd.DataFrame({"hours": seconds.to_numpy() * devices / 3600.0, "unit": unit})
    frame.index = trials.run_id.to_numpy()
    return frame


def arm_table(record: StudyRecord, metric: str = "val/acc", mode: str = "max") -> pd.DataFrame:
    """One row per arm: its best trial on validation (never test), its costs, and the arm's trial counts."""
    trials = record.trials
    if trials.empty or ARM_COLUMN not in trials:
        return pd.DataFrame(columns=ARM_COLUMNS)
    best = best_trials(trials, metric, mode)
    counts = status_counts(trials)
    compute = trial_compute(record)
    rows = []
    for arm in study_order(trials):
        members = trials[trials[ARM_COLUMN] == arm]
        row = best.loc[arm] if arm in best.index else None
        run_id = row["run_id"] if row is not None else None
        spent = compute.loc[members.run_id]
        units = sorted(set(spent.unit))
        trainable, total = _num(row, "metrics.trainable_params"), _num(row, "metrics.total_params")
        rows.append(
            {
                "study": record.name,
                "arm": arm,
                "method": row[METHOD_COLUMN] if row is not None else members[METHOD_COLUMN].iloc[0],
                "test_acc": _num(row, "metrics.test/acc"),
                "test_acc5": _num(row, "metrics.test/acc5"),
                "test_macro_f1": _num(row, "metrics.test/macro_f1"),
                "best_val_acc": _num(row, "selection"),
                "epoch1_train_acc": _at_epoch(record, run_id, "train/acc", 1),
                "epoch1_val_acc": _at_epoch(record, run_id, "val/acc", 1),
                "trainable_params": trainable,
                "trainable_pct": 100.0 * trainable / total if total else float("nan"),
                "epoch_time_s": _training_epochs(record, run_id, "epoch_time_s").mean(),
                "throughput_img_s": _training_epochs(record, run_id, "throughput_img_s").mean(),
                "peak_mem_mb": record.curve(run_id, "peak_mem_mb").max() if run_id else float("nan"),
                "runs_on": runs_on(row),
                "compute_h": float(spent.hours.sum()),
                "compute_unit": units[0] if len(units) == 1 else "/".join(units),
                **{status: int(counts.loc[arm, status]) for status in STATUSES},
                "run_id": run_id,
            }
        )
    return pd.DataFrame(rows, columns=ARM_COLUMNS)


def runs_on(row: pd.Series | None) -> str:
    """Device and precision of a trial (`cuda (NVIDIA H100 ...), bf16`): what its time and memory were measured on."""
    values = [row.get(f"{RUNTIME_COLUMN}.{key}") if row is not None else None for key in ("device", "precision")]
    known = [str(value) for value in values if isinstance(value, str) and value]
    return ", ".join(known) or "n/a"


def _at_epoch(record: StudyRecord, run_id: str | None, key: str, epoch: int) -> float:
    if run_id is None:
        return float("nan")
    curve = record.curve(run_id, key)
    return float(curve.loc[epoch]) if epoch in curve.index else float("nan")


def _training_epochs(record: StudyRecord, run_id: str | None, key: str) -> pd.Series:
    """Values of the epochs that trained (epoch 0 only evaluates)."""
    if run_id is None:
        return pd.Series(dtype=float)
    curve = record.curve(run_id, key)
    return curve[curve.index >= 1]


PROTOCOL_METRICS = ("test/base_acc", "test/new_acc", "test/hm", "retention/", "wise/")
"""Final metrics of the protocols (base-to-new, retention, WiSE-FT), shown when a study recorded them."""


def protocol_table(record: StudyRecord, arms: pd.DataFrame) -> pd.DataFrame:
    """Per arm, the protocol metrics of its val-best trial; empty when the study recorded none."""
    trials = record.trials.set_index("run_id") if not record.trials.empty else record.trials
    columns = sorted(c for c in trials if c.removeprefix("metrics.").startswith(PROTOCOL_METRICS))
    if not columns:
        return pd.DataFrame()
    rows = []
    for arm, run_id in zip(arms.arm, arms.run_id, strict=True):
        values = trials.loc[run_id, columns] if isinstance(run_id, str) else pd.Series(index=columns, dtype=float)
        rows.append({"arm": arm, **{c.removeprefix("metrics."): v for c, v in values.items()}})
    return pd.DataFrame(rows)


def class_extremes(per_class: pd.DataFrame, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` best and `n` worst classes by F1 (ties broken by support, then name)."""
    ranked = per_class.sort_values(["f1", "support", "class"], ascending=[False, False, True], kind="stable")
    worst = per_class.sort_values(["f1", "support", "class"], ascending=[True, False, True], kind="stable")
    return ranked.head(n).reset_index(drop=True), worst.head(n).reset_index(drop=True)


def confused_pairs(confusion: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The most frequent mistakes: (true class, predicted class, count, share of the true class)."""
    counts = confusion.to_numpy(dtype=float, copy=True)
    support = counts.sum(axis=1)
    np.fill_diagonal(counts, 0.0)
    order = np.argsort(-counts, axis=None, kind="stable")
    rows = []
    for flat in order[:n]:
        true, predicted = np.unravel_index(flat, counts.shape)
        if counts[true, predicted] <= 0:
            break
        rows.append(
            {
                "true": str(confusion.index[true]),
                "predicted": str(confusion.columns[predicted]),
                "count": int(counts[true, predicted]),
                "share_of_true": counts[true, predicted] / support[true] if support[true] else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true"])


def seed_repeats(trials: pd.DataFrame, metric: str = "metrics.test/acc") -> pd.DataFrame:
    """Mean ± std of `metric` over completed trials that differ only in seeds (few-shot repeats).

    Empty when no arm repeats a configuration over seeds.
    """
    columns = ["arm", "config", "n", "mean", "std"]
    if trials.empty or STATUS_COLUMN not in trials or metric not in trials:
        return pd.DataFrame(columns=columns)
    done = trials[trials[STATUS_COLUMN] == "completed"]
    rows = []
    for arm, members in done.groupby(ARM_COLUMN, sort=True):
        params = [c for c in members if c.startswith("params.") and members[c].nunique(dropna=False) > 1]
        seeds = [c for c in params if c in SEED_PARAMS]
        if not seeds:
            continue
        rest = [c for c in params if c not in SEED_PARAMS]
        groups = members.groupby(rest, dropna=False, sort=True) if rest else [((), members)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{c.removeprefix('params.')}={v}" for c, v in zip(rest, key, strict=True))
            values = group[metric].astype(float)
            rows.append(
                {"arm": arm, "config": label or "(all)", "n": len(values), "mean": values.mean(), "std": values.std()}
            )
    frame = pd.DataFrame(rows, columns=columns)
    return frame[frame.n >= 2].reset_index(drop=True)


def pareto_front(params: pd.Series, accuracy: pd.Series) -> pd.Series:
    """True for points no other point beats: as accurate or more with as few trainable parameters or fewer."""
    front = []
    for i in params.index:
        dominated = (
            (params <= params[i]) & (accuracy >= accuracy[i]) & ((params < params[i]) | (accuracy > accuracy[i]))
        ).any()
        front.append(bool(not dominated and not np.isnan(accuracy[i])))
    return pd.Series(front, index=params.index)
