"""Each arm's search as an Optuna study rebuilt from MLflow, for importance and parallel coordinates.

The record, not the searcher's own database, is the source: it holds every trial of every invocation on
any cluster, with the values the trials actually ran with. Distributions are inferred from those values.
"""

from __future__ import annotations

import math

import optuna
import pandas as pd
import yaml
from matplotlib import colormaps
from matplotlib.figure import Figure
from optuna.trial import TrialState

from clipstudy.analysis.load import StudyRecord
from clipstudy.analysis.selection import selection_score
from clipstudy.tracking.schema import ARM_COLUMN, STATUS_COLUMN

MIN_TRIALS_FOR_IMPORTANCE = 3
LOG_SPAN = 20.0
"""Positive numeric ranges wider than this factor are shown on a log axis (learning rates, LoRA ranks)."""


def _parse(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def infer_distribution(values: pd.Series) -> tuple[optuna.distributions.BaseDistribution, list[object]]:
    """An Optuna distribution covering `values` (MLflow params, stored as text) and the values in its terms."""
    parsed = [_parse(v) for v in values]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in parsed)
    if numeric:
        low, high = min(parsed), max(parsed)
        log = low > 0 and high / low >= LOG_SPAN
        if all(isinstance(v, int) for v in parsed):
            return optuna.distributions.IntDistribution(int(low), int(high), log=log), [int(v) for v in parsed]
        return optuna.distributions.FloatDistribution(float(low), float(high), log=log), [float(v) for v in parsed]
    labels = [str(v) for v in values]
    return optuna.distributions.CategoricalDistribution(sorted(set(labels))), labels


def rebuild_search(record: StudyRecord, arm: str, metric: str = "val/acc", mode: str = "max") -> optuna.Study:
    """An in-memory Optuna study of one arm: completed trials with their val score, pruned ones as PRUNED."""
    members = record.trials[record.trials[ARM_COLUMN] == arm].reset_index(drop=True)
    searched = [c for c in members if c.startswith("params.") and members[c].nunique(dropna=True) > 1]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" per arm
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", study_name=arm)
    if members.empty:
        return study
    columns: dict[str, tuple[optuna.distributions.BaseDistribution, dict[int, object]]] = {}
    for column in searched:
        present = members[column].dropna()
        distribution, values = infer_distribution(present)
        columns[column.removeprefix("params.")] = (distribution, dict(zip(present.index, values, strict=True)))
    scores = selection_score(members, metric)
    for i, status in enumerate(members[STATUS_COLUMN]):
        params = {name: values[i] for name, (_, values) in columns.items() if i in values}
        distributions = {name: columns[name][0] for name in params}
        state, value = _state(status, scores.iloc[i])
        intermediate = record.curve(members.run_id.iloc[i], metric).to_dict()
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=params,
                distributions=distributions,
                intermediate_values={int(k): float(v) for k, v in intermediate.items()},
            )
        )
    return study


def _state(status: str, score: float) -> tuple[optuna.trial.TrialState, float | None]:
    if status == "completed" and not math.isnan(score):
        return optuna.trial.TrialState.COMPLETE, float(score)
    if status == "pruned":
        return optuna.trial.TrialState.PRUNED, None
    return optuna.trial.TrialState.FAIL, None


def param_importances(study: optuna.Study) -> dict[str, float] | str:
    """fANOVA importances of the searched keys, or why they cannot be computed."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    searched = {name for trial in complete for name in trial.params}
    if not searched:
        return "nothing was searched"
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials, has {len(complete)}"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def importance_figure(studies: dict[str, optuna.Study], title: str) -> tuple[Figure, pd.DataFrame]:
    """One bar panel per arm, and the importances as a table (arm, param, importance)."""
    arms = sorted(studies)
    cols = min(max(len(arms), 1), 3)
    rows = math.ceil(max(len(arms), 1) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    records = []
    for ax, arm in zip(axes, arms, strict=False):
        importances = param_importances(studies[arm])
        ax.set_title(arm)
        if isinstance(importances, str):
            ax.text(0.5, 0.5, f"n/a: {importances}", ha="center", va="center", wrap=True, fontsize=8)
            ax.set_axis_off()
            continue
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:purple")
        ax.set_xlim(0, 1)
        ax.set_xlabel("fANOVA importance (share of val variance)")
        records.extend({"arm": arm, "param": n, "importance": importances[n]} for n in importances)
    for extra in axes[len(arms) :]:
        extra.set_visible(False)
    fig.suptitle(title)
    return fig, pd.DataFrame(records, columns=["arm", "param", "importance"])


def parallel_coordinates(study: optuna.Study, title: str) -> Figure | None:
    """Each trial as a line across its searched values and its val score (completed: coloured by score,
    pruned: grey dashed). None below two completed trials: there is no search to compare."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    names = sorted({name for t in trials for name in t.params})
    if len(complete) < 2 or not names:
        return None
    distributions = {name: next(t.distributions[name] for t in trials if name in t.params) for name in names}
    fig = Figure(figsize=(max(6.0, 1.8 * (len(names) + 1)), 4.2), layout="constrained")
    ax = fig.subplots()
    scores = [t.value for t in complete]
    low, high = min(scores), max(scores)
    cmap = colormaps["viridis"]
    for trial in sorted(trials, key=lambda t: (t.state == TrialState.COMPLETE, t.value or 0.0)):
        ys = [_position(trial.params.get(n), distributions[n]) for n in names]
        if trial.state == TrialState.COMPLETE:
            score = (trial.value - low) / (high - low) if high > low else 1.0
            ax.plot(range(len(names) + 1), [*ys, score], color=cmap(score), linewidth=2, marker="o")
        else:
            ax.plot(range(len(names)), ys, color="tab:gray", linestyle="--", alpha=0.6, marker="x")
    for i, name in enumerate(names):
        ax.axvline(i, color="black", linewidth=0.8)
        for y, label in _axis_labels(distributions[name]):
            ax.annotate(label, (i, y), xytext=(4, 0), textcoords="offset points", fontsize=7, va="center")
    ax.axvline(len(names), color="black", linewidth=0.8)
    for y, value in ((0.0, low), (1.0, high)):
        ax.annotate(f"{value:.4g}", (len(names), y), xytext=(4, 0), textcoords="offset points", fontsize=7)
    ax.set_xticks(range(len(names) + 1), [*names, "val score"], rotation=20)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, len(names) + 0.6)
    ax.set_title(f"{title} (lines: trials; grey dashed: pruned)")
    return fig


def _position(value: object, distribution: optuna.distributions.BaseDistribution) -> float:
    """A value's height on its axis, in [0, 1]; NaN when the trial did not set it."""
    if value is None:
        return math.nan
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        choices = distribution.choices
        return choices.index(value) / max(len(choices) - 1, 1)
    low, high, value = float(distribution.low), float(distribution.high), float(value)
    if distribution.log:
        low, high, value = math.log(low), math.log(high), math.log(value)
    return (value - low) / (high - low) if high > low else 0.5


def _axis_labels(distribution: optuna.distributions.BaseDistribution) -> list[tuple[float, str]]:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return [(_position(c, distribution), str(c)) for c in distribution.choices]
    return [(0.0, f"{distribution.low:.3g}"), (1.0, f"{distribution.high:.3g}")]
