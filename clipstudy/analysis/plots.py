"""The report's figures, each a matplotlib Figure readable without the text around it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from clipstudy.analysis.load import StudyRecord
from clipstudy.analysis.tables import pareto_front
from clipstudy.tracking.schema import ARM_COLUMN, STATUS_COLUMN

STATUS_STYLE = {
    "completed": {"linestyle": "-", "alpha": 0.9, "color": "tab:green"},
    "pruned": {"linestyle": "--", "alpha": 0.7, "color": "tab:gray"},
    "failed": {"linestyle": ":", "alpha": 0.7, "color": "tab:red"},
    "running": {"linestyle": "-.", "alpha": 0.7, "color": "tab:blue"},
}
STATUS_LABEL = {
    "completed": "completed",
    "pruned": "pruned (stopped by the scheduler)",
    "failed": "failed",
    "running": "unfinished (running or interrupted)",
}


def _grid(count: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list]:
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    return fig, axes[:count]


def accuracy_vs_params(table: pd.DataFrame) -> Figure:
    """Test accuracy of each arm's val-best trial against its trainable parameters; Pareto front marked."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    data = table.dropna(subset=["test_acc"]).reset_index(drop=True)
    x = data.trainable_params.fillna(0).clip(lower=1)  # 0 trainable (zero-shot) sits at 1 on the log axis
    y = 100 * data.test_acc
    several = data.study.nunique() > 1
    labels = [f"{s}/{a}" if several else a for s, a in zip(data.study, data.arm, strict=True)]
    front = pareto_front(x, y)
    ax.scatter(x[~front], y[~front], s=50, color="tab:blue", label="arm (val-best trial)")
    ax.scatter(x[front], y[front], s=90, color="tab:red", marker="*", label="Pareto front", zorder=3)
    order = x[front].sort_values().index
    ax.plot(x[order], y[order], color="tab:red", linewidth=1, alpha=0.6)
    for xi, yi, label, params in zip(x, y, labels, data.trainable_params.fillna(0), strict=True):
        text = f"{label} ({int(params):,})" if params < 1 else label
        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale; 0 shown at 1)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs trainable parameters")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def learning_curves(record: StudyRecord, table: pd.DataFrame) -> Figure:
    """Train and val accuracy per epoch of each arm's val-best trial, epoch 0 (before training) included."""
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    colors = iter(_palette(len(table)))
    for row in table.itertuples():
        color = next(colors)
        if not isinstance(row.run_id, str):
            continue
        val = record.curve(row.run_id, "val/acc")
        train = record.curve(row.run_id, "train/acc")
        ax.plot(val.index, 100 * val, marker="o", color=color, label=f"{row.arm} val")
        if not train.empty:
            ax.plot(train.index, 100 * train, marker=".", linestyle="--", color=color, label=f"{row.arm} train")
    ax.set_xlabel("epoch (0 = before training)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{record.name}: learning curves of each arm's best trial")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


def search_trials(record: StudyRecord) -> Figure:
    """Every trial's val accuracy per epoch, one panel per arm: pruned trials end early, with an ×."""
    arms = sorted(record.trials[ARM_COLUMN].unique()) if not record.trials.empty else []
    fig, axes = _grid(max(len(arms), 1))
    for ax, arm in zip(axes, arms, strict=False):
        members = record.trials[record.trials[ARM_COLUMN] == arm]
        for run_id, status in zip(members.run_id, members[STATUS_COLUMN].fillna("running"), strict=True):
            curve = record.curve(run_id, "val/acc")
            if curve.empty:
                continue
            style = STATUS_STYLE.get(status, STATUS_STYLE["running"])
            ax.plot(curve.index, 100 * curve, marker=".", **style)
            if status != "completed":
                ax.plot(curve.index[-1], 100 * curve.iloc[-1], marker="x", markersize=9, color=style["color"])
        ax.set_title(f"{arm} ({len(members)} trials)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(-0.3, max(1.0, ax.get_xlim()[1]))
        ax.grid(True, alpha=0.3)
    shown = set(record.trials[STATUS_COLUMN].fillna("running")) if STATUS_COLUMN in record.trials else set()
    handles = [
        Line2D([], [], marker="x" if status != "completed" else ".", label=STATUS_LABEL[status], **style)
        for status, style in STATUS_STYLE.items()
        if status in shown or status in ("completed", "pruned")
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(f"{record.name}: every trial's validation accuracy (what the scheduler did)")
    return fig


def confusion_heatmap(confusion: pd.DataFrame, title: str) -> Figure:
    """Row-normalised confusion matrix (share of each true class predicted as each class)."""
    counts = confusion.to_numpy(dtype=float)
    rates = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = min(max(4.0, 0.28 * len(confusion)), 16.0)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class")
    if len(confusion) <= 40:
        ax.set_xticks(range(len(confusion)), [str(c) for c in confusion.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(len(confusion)), [str(c) for c in confusion.index], fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def _palette(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(count, 1))]
