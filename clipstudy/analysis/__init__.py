"""Comparative analysis of studies: MLflow runs -> pandas -> tables, figures and reports.

The same functions serve `clipstudy report` and a notebook:

    from clipstudy.analysis import load_record, arm_table, build_report
    record = load_record("quickstart", "sqlite:///mlflow.db")
    arm_table(record)                      # one row per arm, its val-best trial
    build_report([record], "report/")      # report.md, report.html, CSVs, figures

The names below load on first use (PEP 562), so `clipstudy.analysis.selection`, which the Python API
uses, imports neither MLflow nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StudyRecord": "load",
    "load_record": "load",
    "resolve_study": "load",
    "build_report": "report",
    "arm_table": "tables",
    "class_extremes": "tables",
    "confused_pairs": "tables",
    "seed_repeats": "tables",
    "trial_compute": "tables",
    "best_trials": "selection",
    "status_counts": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipstudy.analysis' has no attribute '{name}'")
    return getattr(importlib.import_module(f"clipstudy.analysis.{_EXPORTS[name]}"), name)
