"""A trial's driver outside Tune: a failure that a retry would repeat ends the retry at once; a crash is retried."""

from __future__ import annotations

import types

import pytest
import ray.tune

from clipstudy.errors import TrialFailed
from clipstudy.study import driver
from clipstudy.studyfile import Resources, load_study
from clipstudy.tracking import read, runs
from clipstudy.tracking.schema import FAILED_FOR_GOOD, REASON_COLUMN, STATUS_COLUMN
from tests.conftest import new_store
from tests.study.conftest import write_study

STUDY = {
    "name": "driver_test",
    "base": {"model": {"arch": "clipstudy-tiny", "pretrained": "none"}, "data": {"name": "synthetic"}},
    "arms": [{"name": "probe", "method": "linear_probe"}],
}


class Fails:
    """A stand-in TorchTrainer whose fit raises `error`; counts its builds."""

    built = 0

    def __init__(self, error: Exception):
        self.error = error
        Fails.built += 1

    def fit(self):
        raise self.error


@pytest.fixture
def attempt(tmp_path, template_store, monkeypatch):
    """Run the driver of trial `t1` as Tune would, its trainer failing with the given error."""
    uri = new_store(template_store, tmp_path)
    study_file = write_study(tmp_path, STUDY)
    parent = runs.start_study_run(uri, STUDY["name"], study_file, resume=False)
    spec = driver.ArmSpec(load_study(study_file), "probe", uri, parent, str(tmp_path / "runs"), Resources(), 1)
    monkeypatch.setattr(ray.tune, "get_context", lambda: types.SimpleNamespace(get_trial_id=lambda: "t1"))
    Fails.built = 0

    def run(error: Exception) -> None:
        monkeypatch.setattr(driver, "make_trainer", lambda spec, config, trial_id: Fails(error))
        driver.trial_driver({}, spec)

    run.trial = lambda: read.trial_runs(uri, STUDY["name"], parent).iloc[0]
    return run


def test_a_retry_of_a_diverged_trial_ends_without_training(attempt):
    diverged = TrialFailed("non-finite training loss (nan) at epoch 1, step 0: lower train.lr")
    with pytest.raises(TrialFailed):
        attempt(diverged)
    trial = attempt.trial()
    assert trial[STATUS_COLUMN] == "failed" and trial[f"tags.{FAILED_FOR_GOOD}"] == "true"
    with pytest.raises(TrialFailed, match=r"^non-finite training loss .* \(its restart ends here:"):
        attempt(diverged)
    assert Fails.built == 1  # the retry built no trainer
    assert attempt.trial()[REASON_COLUMN].startswith("non-finite training loss (nan)")


def test_a_crashed_trial_is_retried(attempt):
    crash = RuntimeError("The actor died unexpectedly before finishing this task")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            attempt(crash)
    assert Fails.built == 2
    trial = attempt.trial()
    assert trial[STATUS_COLUMN] == "failed" and f"tags.{FAILED_FOR_GOOD}" not in trial.index


def test_what_fails_again_is_clipstudys_own_error_anywhere_in_the_chain():
    try:
        try:
            raise TrialFailed("non-finite training loss")
        except TrialFailed as inner:
            raise RuntimeError("Training failed") from inner
    except RuntimeError as outer:
        assert driver.fails_again(outer)
    assert not driver.fails_again(RuntimeError("worker died"))
