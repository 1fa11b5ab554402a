"""A trial with several workers: Ray Train starts a worker group and the engine trains data-parallel."""

from __future__ import annotations

import os

import mlflow
import pytest

from clipstudy.errors import ConfigError
from clipstudy.tracking.schema import RESOURCES_COLUMN, STATUS_COLUMN
from tests.study.conftest import write_study

pytestmark = pytest.mark.slow

TWO_WORKERS = {
    "name": "two_workers",
    "base": {
        "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
        "data": {"name": "synthetic", "num_classes": 4, "samples_per_class": 24},
        "train": {"epochs": 2, "batch_size": 16},
    },
    "scheduler": {"kind": "fifo"},
    "arms": [{"name": "full_ft", "method": "full_ft"}],
}


def run(tmp_path, resources: dict):
    from clipstudy.study.runner import RunOptions, run_study

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    study_file = write_study(tmp_path, {**TWO_WORKERS, "resources": resources})
    return run_study(study_file, RunOptions(local=True, workdir=str(tmp_path)))


def test_a_two_worker_trial_trains_and_is_recorded(local_ray, tmp_path):
    trials = run(tmp_path, {"cpus": 0.99, "workers": 2})
    assert trials[STATUS_COLUMN].tolist() == ["completed"]
    assert trials[f"{RESOURCES_COLUMN}.workers"].tolist() == ["2"]
    run_id = trials.run_id.iloc[0]
    client = mlflow.MlflowClient(trials.attrs["tracking_uri"])
    assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [0, 1, 2]
    assert 0.0 <= trials["metrics.test/acc"].iloc[0] <= 1.0
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"per_class.csv", "weights.safetensors"} <= names


def test_workers_that_cannot_all_fit_are_refused_before_any_trial(local_ray, tmp_path):
    cpus = os.cpu_count()
    with pytest.raises(ConfigError, match=r"a trial needs .* CPU \(2 workers x .* \+ its driver's 0.01\)"):
        run(tmp_path, {"cpus": cpus / 2, "workers": 2})
    assert not (tmp_path / "mlflow.db").exists()  # refused before the study's MLflow run was opened
