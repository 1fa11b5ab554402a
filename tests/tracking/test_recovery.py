"""Recovering the record after a stop or crash: open trial runs closed, dead trials failed, lost runs adopted."""

from __future__ import annotations

import pytest

from clipstudy.tracking import recovery, runs
from clipstudy.tracking.schema import ADOPTED, REASON, STATUS, TRIAL_ID

# MLflow 3.17's SQLAlchemy store uses a loader strategy SQLAlchemy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def test_mark_failed_if_running_keeps_a_recorded_outcome(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    dead, failed, done = (runs.trial_run(uri, "demo", parent, "arm", "lora", t, config) for t in "abc")
    runs.set_status(uri, failed, "failed", "non-finite loss")
    runs.set_status(uri, done, "completed")
    assert recovery.mark_failed_if_running(uri, dead, "trial errored: worker died")
    assert not recovery.mark_failed_if_running(uri, failed, "trial errored")
    assert not recovery.mark_failed_if_running(uri, done, "trial errored")
    outcomes = {r: (client.get_run(r).info.status, client.get_run(r).data.tags) for r in (dead, failed, done)}
    assert outcomes[dead][0] == "FAILED"
    assert outcomes[dead][1][REASON] == "trial errored: worker died"
    assert outcomes[failed][1][REASON] == "non-finite loss"
    assert (outcomes[done][0], outcomes[done][1][STATUS]) == ("FINISHED", "completed")


def test_close_interrupted_trials_closes_only_the_arms_orphans(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    run_ids = {tid: runs.trial_run(uri, "demo", parent, "lora", "lora", tid, config) for tid in ("done", "resumed")}
    more = ("orphan", "pruned", "tune_pruned", "tune_errored")
    run_ids |= {tid: runs.trial_run(uri, "demo", parent, "lora", "lora", tid, config) for tid in more}
    run_ids["other_arm"] = runs.trial_run(uri, "demo", parent, "probe", "linear_probe", "x", config)
    runs.log_epoch(uri, run_ids["done"], {"val/acc": 0.75}, 3)
    runs.set_status(uri, run_ids["done"], "completed")
    runs.log_epoch(uri, run_ids["orphan"], {"val/acc": 0.5}, 1)
    client.set_tag(run_ids["pruned"], STATUS, "pruned")  # outcome recorded, run not yet ended: the driver died
    runs.finish_study_run(uri, parent, "KILLED")
    other_parent = runs.start_study_run(uri, "demo", None, resume=False)
    elsewhere = runs.trial_run(uri, "demo", other_parent, "lora", "lora", "orphan", config)
    resumed_parent = runs.start_study_run(uri, "demo", None, resume=True)
    assert resumed_parent == other_parent

    # Tune's snapshot: "done" finished, "resumed" continues, and the driver died before its callbacks recorded
    # that Tune had stopped "tune_pruned" (ASHA) and seen "tune_errored" fail
    known = {"done": "completed", "resumed": None, "tune_pruned": "pruned", "tune_errored": "failed"}
    closed = recovery.close_interrupted_trials(uri, parent, "lora", known)

    assert sorted(closed) == sorted(run_ids[tid] for tid in ("orphan", "pruned", "tune_pruned", "tune_errored"))
    state = {tid: client.get_run(run_id) for tid, run_id in run_ids.items()}
    orphan = state["orphan"]
    assert (orphan.info.status, orphan.data.tags[STATUS]) == ("FAILED", "failed")
    assert orphan.data.tags[REASON] == recovery.INTERRUPTED
    assert orphan.info.end_time is not None
    assert orphan.data.metrics == {"val/acc": 0.5}  # what it had logged stays
    assert (state["pruned"].info.status, state["pruned"].data.tags[STATUS]) == ("FINISHED", "pruned")
    assert REASON not in state["pruned"].data.tags
    assert (state["tune_pruned"].info.status, state["tune_pruned"].data.tags[STATUS]) == ("FINISHED", "pruned")
    errored = state["tune_errored"]
    assert (errored.info.status, errored.data.tags[STATUS]) == ("FAILED", "failed")
    assert errored.data.tags[REASON] == recovery.TUNE_ENDED
    assert (state["done"].info.status, state["done"].data.tags[STATUS]) == ("FINISHED", "completed")
    assert state["done"].data.metrics == {"val/acc": 0.75}
    for untouched in (state["resumed"], state["other_arm"], client.get_run(elsewhere)):
        assert (untouched.info.status, untouched.data.tags[STATUS]) == ("RUNNING", "running")
    assert recovery.close_interrupted_trials(uri, parent, "lora", known) == []


def test_a_completed_run_tune_lost_is_adopted_once_by_a_trial_with_its_config(uri, client, tiny_config):
    config, other = tiny_config("lora"), tiny_config("lora", train__lr=0.5)
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    lost = runs.trial_run(uri, "demo", parent, "lora", "lora", "lost", config)
    runs.log_epoch(uri, lost, {"val/acc": 0.5}, 0)
    runs.log_epoch(uri, lost, {"val/acc": 0.75}, 2)
    runs.set_status(uri, lost, "completed")
    known = runs.trial_run(uri, "demo", parent, "lora", "lora", "known", config)
    runs.set_status(uri, known, "completed")
    pruned = runs.trial_run(uri, "demo", parent, "lora", "lora", "pruned", config)
    runs.set_status(uri, pruned, "pruned")

    assert recovery.unclaimed_completed_runs(uri, parent, "lora", {"known"}) == [lost]
    assert recovery.unclaimed_completed_runs(uri, parent, "probe", set()) == []
    assert recovery.adopt_completed_run(uri, lost, "new1", other) is None  # another config: trains anew
    assert client.get_run(lost).data.tags[TRIAL_ID] == "lost"

    result = recovery.adopt_completed_run(uri, lost, "new2", config)

    assert result == {"val/acc": 0.75, "epoch": 2}
    tags = client.get_run(lost).data.tags
    assert (tags[TRIAL_ID], tags[ADOPTED], tags[STATUS]) == ("new2", "lost", "completed")
    assert recovery.completed_trial(uri, "demo", parent, "new2") == result
    assert recovery.adopt_completed_run(uri, lost, "new3", config) is None  # taken already
