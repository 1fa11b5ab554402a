"""On --resume: what Tune's last snapshot says of each trial decides how its open MLflow run is closed."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipstudy import study as study_module
from clipstudy.trial import PLANNED


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
