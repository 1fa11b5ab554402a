"""On --resume: what Tune's last snapshot says of each trial decides how its open MLflow run is closed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field

import pytest

from clipstudy.study import runner as study_module
from clipstudy.study.driver import PLANNED
from clipstudy.tracking.schema import ADOPTED_COLUMN, STATUS_COLUMN, TRIAL_ID_COLUMN
from tests.study.conftest import write_study


@dataclass
class SnapshotTrial:
    trial_id: str
    status: str
    last_result: dict = field(default_factory=dict)


class FakeAnalysis:
    def __init__(self, path: str):
        self.trials = [
            SnapshotTrial("finished", "TERMINATED", {"epoch": 3, PLANNED: 3}),
            SnapshotTrial("asha_stopped", "TERMINATED", {"epoch": 1, PLANNED: 3}),
            SnapshotTrial("crashed", "ERROR", {"epoch": 2, PLANNED: 3}),
            SnapshotTrial("training", "RUNNING", {"epoch": 1, PLANNED: 3}),
            SnapshotTrial("waiting", "PENDING"),
        ]


class NoSnapshot:
    def __init__(self, path: str):
        raise ValueError("No experiment state found")


def test_outcomes_from_the_snapshot(monkeypatch):
    monkeypatch.setattr(study_module.tune, "ExperimentAnalysis", FakeAnalysis)
    assert study_module.restored_trial_outcomes("runs/x") == {
        "finished": "completed",
        "asha_stopped": "pruned",
        "crashed": "failed",
        "training": None,
        "waiting": None,
    }


def test_no_snapshot_means_no_known_trials(monkeypatch):
    monkeypatch.setattr(study_module.tune, "ExperimentAnalysis", NoSnapshot)
    assert study_module.restored_trial_outcomes("runs/x") == {}


@pytest.mark.slow
def test_a_finished_trial_tune_lost_is_taken_over_not_run_again(local_ray, tmp_path):
    """The driver stopped before Tune's first snapshot of the arm: Tune proposes the zero-shot trial again,
    and the new trial takes the recorded run over instead of evaluating (and recording) it twice."""
    from clipstudy.study.runner import RunOptions, run_study

    study = {
        "name": "lost_trial",
        "base": {
            "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
            "data": {"name": "synthetic", "num_classes": 4, "samples_per_class": 12},
        },
        "arms": [{"name": "zero_shot", "method": "zero_shot"}],
    }
    study_file = write_study(tmp_path, study)
    options = RunOptions(local=True, workdir=str(tmp_path))
    first = run_study(study_file, options)
    shutil.rmtree(tmp_path / "runs" / "lost_trial.zero_shot")  # as if no snapshot had been written

    again = run_study(study_file, dataclasses.replace(options, resume=True))

    assert len(first) == len(again) == 1
    before, after = first.iloc[0], again.iloc[0]
    assert after["run_id"] == before["run_id"]
    assert after[TRIAL_ID_COLUMN] != before[TRIAL_ID_COLUMN]
    assert after[ADOPTED_COLUMN] == before[TRIAL_ID_COLUMN]
    assert after["metrics.test/acc"] == before["metrics.test/acc"]
    assert after[STATUS_COLUMN] == "completed"
    result_file = next((tmp_path / "runs" / "lost_trial.zero_shot").glob("*/result.json"))
    reported = json.loads(result_file.read_text().splitlines()[-1])
    assert reported["val/acc"] == before["metrics.val/acc"]
