"""Live progress of a running study: one line per finished epoch and per trial state change.

Each line names the arm and the trial, says what happened, and ends with the arm's current best
(selected on validation, among completed and running trials) and its trial counts. It replaces Ray
Tune's own status tables, which repeat every sampled value and every metric of every trial.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ray import tune
from rich.console import Console

from clipstudy.study.protocol import PLANNED, was_pruned

CONSOLE = Console()  # follows sys.stdout as it is at each print (Tune pickles callbacks: none holds a Console)
FINISHED = ("TERMINATED", "ERROR")


def say(text: str, style: str | None = None) -> None:
    CONSOLE.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def error_summary(error_file: str | None) -> str:
    """The last line of a trial's error file (the exception, e.g. `TrialFailed: non-finite training loss ...`)."""
    try:
        last = Path(error_file).read_text().strip().splitlines()[-1] if error_file else ""
    except (OSError, IndexError):
        last = ""
    return re.sub(r"^[\w.]+\.(\w+: )", r"\1", last) or f"see {error_file or 'the Ray logs'}"


class StudyProgress(tune.Callback):
    """Prints an arm's trials as they start, finish epochs, and complete, are pruned or fail."""

    def __init__(self, arm: str, metric: str, mode: str, planned: int):
        self.arm, self.metric, self.mode, self.planned = arm, metric, mode, planned
        self.best: dict[str, float] = {}  # trial id -> its best value so far, for completed and running trials
        self.seen: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        params = "  ".join(f"{key}={format_value(value)}" for key, value in sorted(trial.config.items()))
        self.line(trials, trial, f"started  {params}".rstrip(), now="RUNNING")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if value is not None:
            self.record(trial.trial_id, float(value))
        self.line(trials, trial, f"epoch {self.epoch(result)}  {self.metric} {format_value(value)}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if was_pruned(result):
            self.best.pop(trial.trial_id, None)
            self.line(trials, trial, f"pruned after epoch {self.epoch(result)}", "dim", now="TERMINATED")
        else:
            self.line(trials, trial, f"completed  epochs {self.epoch(result)}", "green", now="TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.best.pop(trial.trial_id, None)
        where = f"after epoch {self.epoch(trial.last_result)}" if trial.last_result else "before its first epoch"
        self.line(trials, trial, f"failed {where}: {error_summary(trial.error_file)}", "red", now="ERROR")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        what = f"errored ({error_summary(trial.error_file)}); retrying from its last checkpoint"
        self.line(trials, trial, what, "yellow", now="PENDING")

    def epoch(self, result: dict | None) -> str:
        result = result or {}
        return f"{result.get('epoch', '?')}/{result.get(PLANNED, '?')}"

    def record(self, trial_id: str, value: float) -> None:
        old = self.best.get(trial_id)
        if old is None or (value > old if self.mode == "max" else value < old):
            self.best[trial_id] = value

    def restored(self, trials: list) -> None:
        """Count in trials a resumed study had completed (Tune restores them without calling back)."""
        for trial in trials:
            if trial.trial_id in self.seen:
                continue
            self.seen.add(trial.trial_id)
            result = trial.last_result or {}
            if trial.status == "TERMINATED" and self.metric in result and not was_pruned(result):
                self.record(trial.trial_id, float(result[self.metric]))

    def status(self, trials: list, trial: Any, now: str | None) -> str:
        """`now`: the status `trial` is changing to (Tune calls back before or after it sets it)."""
        status = {t.trial_id: t.status for t in trials}
        status[trial.trial_id] = now or trial.status
        finished = [s for s in status.values() if s in FINISHED]
        running = [s for s in status.values() if s == "RUNNING"]
        counts = f"{len(finished)}/{self.planned} done, {len(running)} running"
        if not self.best:
            return f"best {self.metric} -  {counts}"
        pick = max if self.mode == "max" else min
        leader = pick(self.best, key=self.best.__getitem__)
        return f"best {self.metric} {self.best[leader]:.4f} ({leader})  {counts}"

    def line(self, trials: list, trial: Any, what: str, style: str | None = None, now: str | None = None) -> None:
        self.restored(trials)
        status = self.status(trials, trial, now)
        say(f"{self.arm} {trial.trial_id}  {what}  | {status}", style)
