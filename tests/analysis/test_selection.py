"""The end-of-study summary selects each arm's best trial by the study's own metric and mode."""

import pandas as pd
from rich.console import Console

from clipstudy.analysis.selection import best_trials, status_counts
from clipstudy.analysis.summary import print_summary
from clipstudy.tracking.schema import ARM_COLUMN, METHOD_COLUMN, STATUS_COLUMN


def trials_frame(metric: str, mode: str) -> pd.DataFrame:
    trials = pd.DataFrame(
        {
            ARM_COLUMN: ["lora", "lora", "lora", "probe"],
            METHOD_COLUMN: ["lora", "lora", "lora", "linear_probe"],
            STATUS_COLUMN: ["completed", "completed", "pruned", "completed"],
            "metrics.best_val/acc": [0.90, 0.70, 0.95, 0.50],
            "metrics.best_val/loss": [0.40, 0.20, 0.10, 1.10],
            "metrics.test/acc": [0.88, 0.69, float("nan"), 0.48],
            "metrics.trainable_params": [1000, 2000, 3000, 10],
        }
    )
    trials.attrs.update(metric=metric, mode=mode)
    return trials


def test_best_trial_follows_the_metric_and_mode_and_ignores_pruned_trials():
    by_acc = best_trials(trials_frame("val/acc", "max"))
    assert by_acc.loc["lora", "metrics.trainable_params"] == 1000
    by_loss = best_trials(trials_frame("val/loss", "min"), "val/loss", "min")
    assert by_loss.loc["lora", "metrics.trainable_params"] == 2000
    assert by_loss.loc["lora", "selection"] == 0.20
    assert status_counts(trials_frame("val/acc", "max")).loc["lora"].tolist() == [2, 1, 0]


def test_summary_table_uses_the_study_metric():
    console = Console(record=True, width=200, force_terminal=False)
    print_summary(console, trials_frame("val/loss", "min"), "sqlite:///mlflow.db", "studies/x.yaml")
    text = console.export_text()
    assert "best val/loss" in text and "best val/acc" not in text
    lora = next(line for line in text.splitlines() if line.startswith("│ lora"))
    assert "0.2000" in lora and "0.6900" in lora and "2,000" in lora
    assert "open the MLflow UI: clipstudy ui studies/x.yaml" in text
