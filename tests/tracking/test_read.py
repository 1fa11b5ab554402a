"""Reading the record: a study's trial runs as one pandas row per trial."""

from __future__ import annotations

import pytest

from clipstudy.errors import ClipstudyError
from clipstudy.tracking import read, runs
from clipstudy.tracking.schema import ROLE_COLUMN, STATUS_COLUMN, TRIAL_ID_COLUMN

# MLflow 3.17's SQLAlchemy store uses a loader strategy SQLAlchemy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def test_trial_runs_one_row_per_trial_without_the_parent(uri, tiny_config):
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_ids = {tid: runs.trial_run(uri, "demo", parent, "arm", "lora", tid, config) for tid in ("a", "b", "c")}
    runs.trial_run(uri, "demo", parent, "arm", "lora", "a", config)  # resumed: not a new row
    runs.log_epoch(uri, run_ids["a"], {"val/acc": 0.5}, 0)
    runs.set_status(uri, run_ids["b"], "pruned")

    frame = read.trial_runs(uri, "demo")
    assert len(frame) == 3
    assert set(frame["run_id"]) == set(run_ids.values())
    assert parent not in set(frame["run_id"])
    assert set(frame[ROLE_COLUMN]) == {"trial"}
    assert set(frame[TRIAL_ID_COLUMN]) == {"a", "b", "c"}
    assert {"status", "start_time", "params.lora.r", "params.train.lr", "metrics.val/acc"} <= set(frame.columns)
    assert frame.set_index(TRIAL_ID_COLUMN).loc["b", STATUS_COLUMN] == "pruned"
    assert len(read.trial_runs(uri, "demo", parent_run_id=parent)) == 3
    assert len(read.trial_runs(uri, "demo", parent_run_id="0" * 32)) == 0


def test_trial_runs_of_a_study_without_trials_is_empty(uri):
    runs.start_study_run(uri, "empty", None, resume=False)
    frame = read.trial_runs(uri, "empty")
    assert frame.empty
    assert "run_id" in frame.columns


def test_trial_runs_unknown_study_lists_the_known_ones(uri):
    runs.start_study_run(uri, "cifar-lora", None, resume=False)
    runs.start_study_run(uri, "digits-probe", None, resume=False)
    with pytest.raises(ClipstudyError) as info:
        read.trial_runs(uri, "cifar-lorra")
    message = str(info.value)
    assert "cifar-lorra" in message
    assert "did you mean 'cifar-lora'" in message
    assert "cifar-lora, digits-probe" in message
    assert "Default" not in message
