"""The Python API: load a study, change it, run it, get the trials as a DataFrame.

    from clipstudy.api import load_study, run_study, RunOptions, best_trials
    study = load_study("studies/quickstart.yaml")
    trials = run_study(study, RunOptions(local=True, overrides=["train.epochs=4"]))
    print(best_trials(trials)[["metrics.test/acc", "metrics.trainable_params"]])

Importing this module does not start or import Ray; `run_study` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from clipstudy.analysis.selection import best_trials, status_counts
from clipstudy.studyfile import Study, load_study

if TYPE_CHECKING:
    from clipstudy.study.runner import RunOptions


def run_study(study, options: RunOptions | None = None) -> pd.DataFrame:
    from clipstudy.study.runner import run_study as run

    return run(study, options)


def __getattr__(name: str):
    if name == "RunOptions":
        from clipstudy.study.runner import RunOptions

        return RunOptions
    raise AttributeError(name)


__all__ = ["RunOptions", "Study", "best_trials", "load_study", "run_study", "status_counts"]
