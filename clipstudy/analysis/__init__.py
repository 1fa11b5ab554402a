"""Comparative analysis of studies: MLflow runs -> pandas -> tables, figures and reports.

The same functions serve `clipstudy report` and a notebook:

    from clipstudy.analysis import load_record, arm_table, build_report
    record = load_record("quickstart", "sqlite:///mlflow.db")
    arm_table(record)                      # one row per arm, its val-best trial
    build_report([record], "report/")      # report.md, report.html, CSVs, figures
"""

from clipstudy.analysis.load import StudyRecord, load_record, resolve_study
from clipstudy.analysis.report import build_report
from clipstudy.analysis.tables import arm_table, class_extremes, confused_pairs, seed_repeats, trial_compute

__all__ = [
    "StudyRecord",
    "arm_table",
    "build_report",
    "class_extremes",
    "confused_pairs",
    "load_record",
    "resolve_study",
    "seed_repeats",
    "trial_compute",
]
