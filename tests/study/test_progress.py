"""Live progress: the lines StudyProgress prints for trials and results as Tune hands them over."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipstudy.study.driver import PLANNED
from clipstudy.study.progress import StudyProgress


@dataclass
class FakeTrial:
    """What the callback reads of a ray.tune Trial."""

    trial_id: str
    status: str = "PENDING"
    config: dict = field(default_factory=dict)
    last_result: dict = field(default_factory=dict)
    error_file: str | None = None


def result(epoch: int, value: float, planned: int = 2, metric: str = "val/acc") -> dict:
    return {"epoch": epoch, PLANNED: planned, metric: value}


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def start(progress: StudyProgress, trials: list[FakeTrial], trial: FakeTrial) -> None:
    progress.on_trial_start(0, trials, trial)  # Tune calls back before the trial is RUNNING
    trial.status = "RUNNING"


def report(progress: StudyProgress, trials: list[FakeTrial], trial: FakeTrial, row: dict) -> None:
    progress.on_trial_result(0, trials, trial, row)
    trial.last_result = row


def test_lines_for_a_completed_a_pruned_and_a_failed_trial(capsys, tmp_path):
    progress = StudyProgress("lora", "val/acc", "max", planned=3)
    t1, t2, t3 = FakeTrial("t1", config={"train.lr": 0.00123456, "lora.r": 4}), FakeTrial("t2"), FakeTrial("t3")
    trials = [t1, t2, t3]

    start(progress, trials, t1)
    report(progress, trials, t1, result(1, 0.5))
    report(progress, trials, t1, result(2, 0.75))
    progress.on_trial_complete(0, trials, t1)  # Tune calls back while the trial is still RUNNING
    t1.status = "TERMINATED"
    assert lines(capsys) == [
        "lora t1  started  lora.r=4  train.lr=0.001235  | best val/acc -  0/3 done, 1 running",
        "lora t1  epoch 1/2  val/acc 0.5  | best val/acc 0.5000 (t1)  0/3 done, 1 running",
        "lora t1  epoch 2/2  val/acc 0.75  | best val/acc 0.7500 (t1)  0/3 done, 1 running",
        "lora t1  completed  epochs 2/2  | best val/acc 0.7500 (t1)  1/3 done, 0 running",
    ]

    start(progress, trials, t2)
    report(progress, trials, t2, result(1, 0.9))
    progress.on_trial_complete(0, trials, t2)  # stopped by ASHA before its last epoch: pruned
    t2.status = "TERMINATED"
    start(progress, trials, t3)
    error_file = tmp_path / "error.txt"
    error_file.write_text('Traceback:\n  File "trainer.py"\nclipstudy.errors.TrialFailed: non-finite loss (nan)\n\n')
    t3.status, t3.error_file = "ERROR", str(error_file)  # Tune calls back after the trial is ERROR
    progress.on_trial_error(0, trials, t3)
    assert lines(capsys)[1:] == [
        "lora t2  epoch 1/2  val/acc 0.9  | best val/acc 0.9000 (t2)  1/3 done, 1 running",
        "lora t2  pruned after epoch 1/2  | best val/acc 0.7500 (t1)  2/3 done, 0 running",
        "lora t3  started  | best val/acc 0.7500 (t1)  2/3 done, 1 running",
        "lora t3  failed before its first epoch: TrialFailed: non-finite loss (nan)  "
        "| best val/acc 0.7500 (t1)  3/3 done, 0 running",
    ]


def test_minimised_metric_and_trials_restored_by_a_resume(capsys):
    progress = StudyProgress("probe", "val/loss", "min", planned=4)
    done = FakeTrial("a", "TERMINATED", last_result=result(2, 0.40, metric="val/loss"))
    pruned = FakeTrial("b", "TERMINATED", last_result=result(1, 0.10, metric="val/loss"))
    resumed = FakeTrial("c", "RUNNING")
    trials = [done, pruned, resumed]

    report(progress, trials, resumed, result(1, 0.55, metric="val/loss"))
    report(progress, trials, resumed, result(2, 0.30, metric="val/loss"))
    progress.on_trial_recover(0, trials, resumed)
    assert lines(capsys) == [
        "probe c  epoch 1/2  val/loss 0.55  | best val/loss 0.4000 (a)  2/4 done, 1 running",
        "probe c  epoch 2/2  val/loss 0.3  | best val/loss 0.3000 (c)  2/4 done, 1 running",
        "probe c  errored (see the Ray logs); retrying from its last checkpoint  | best val/loss 0.3000 (c)  2/4 done, "
        "0 running",
    ]
