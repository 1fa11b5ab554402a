"""A real study run on a local Ray instance, shared by the runner tests (it takes a minute or two)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import yaml

PROGRESS_LOG = "progress.log"
RAY_STARTUP_TIMEOUT = "The current node timed out during startup"
"""What Ray says when a node's raylet did not register with its GCS within Ray's fixed 30 s, which a 2-core machine
busy with the rest of the suite can exceed: the tests that start Ray in their own processes start it again then."""
SMALL_STUDY = {
    "name": "runner_test",
    "base": {
        "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
        "data": {"name": "synthetic", "num_classes": 4, "samples_per_class": 24},
        "train": {"epochs": 3, "batch_size": 16},
    },
    "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
    "max_concurrent": 1,
    # A diverged trial diverges again from its checkpoint: no retry (retries are tested in test_faults.py).
    "max_failures": 0,
    "arms": [
        {"name": "zero_shot", "method": "zero_shot"},
        {
            "name": "lora",
            "method": "lora",
            "trials": 4,
            "search": {"train.lr": {"loguniform": [1.0e-5, 1.0e-1]}, "lora.r": {"choice": [2, 4]}},
        },
        {
            "name": "diverges",
            "method": "linear_probe",
            "config": {"train": {"lr": 1.0e30, "optimizer": "sgd"}},
        },
    ],
}


def write_study(folder: Path, study: dict) -> Path:
    path = folder / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance, started as `--local` starts it, for all the studies of a module: `run_study` runs
    on an instance that is already up and leaves it running. Starting Ray costs seconds of CPU (its daemons and
    prestarted workers), which the suite's wall time is made of on a small machine."""
    import ray

    ray.init(include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """Run SMALL_STUDY once with --local semantics; yields (workdir, study file, trials DataFrame).

    What the run printed is in `workdir / PROGRESS_LOG`.
    """
    import ray

    from clipstudy.study.runner import RunOptions, run_study

    workdir = tmp_path_factory.mktemp("study")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    study_file = write_study(workdir, SMALL_STUDY)
    try:
        with open(workdir / PROGRESS_LOG, "w") as log, contextlib.redirect_stdout(log):
            trials = run_study(study_file, RunOptions(local=True, workdir=str(workdir)))
        yield workdir, study_file, trials
    finally:
        ray.shutdown()
