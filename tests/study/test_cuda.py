"""The study runner's GPU paths on a real CUDA machine (skipped where torch sees no CUDA device).

    uv run --all-extras pytest -m gpu tests/study/test_study_cuda.py

What `test_study_gpu_scheduling.py` checks with a GPU only declared to Ray, here with one torch can use:
trials holding half a GPU each train on it at the same time, with `precision: auto` resolved to bf16 where
the GPU has it; and, on a machine with two GPUs, a trial of two workers (one GPU each, NCCL) trains.
"""

from __future__ import annotations

import os

import pytest
import torch

from clipstudy.tracking.schema import GPU_IDS_COLUMN, REASON_COLUMN, RUNTIME_COLUMN, STATUS_COLUMN
from tests.study.conftest import write_study

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

BASE = {
    "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
    "data": {"name": "synthetic", "num_classes": 10, "samples_per_class": 64},
    "train": {"epochs": 3, "batch_size": 32},
}


def run(folder, name: str, arm: dict):
    from clipstudy.study.runner import RunOptions, run_study

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    spec = {"name": name, "base": BASE, "scheduler": {"kind": "fifo"}, "max_failures": 0, "arms": [arm]}
    trials = run_study(write_study(folder, spec), RunOptions(local=True, workdir=str(folder)))
    return trials.sort_values("start_time").reset_index(drop=True)


def test_half_gpu_trials_train_on_the_gpu_at_the_same_time(tmp_path):
    half = {"name": "half", "method": "full_ft", "trials": 2, "resources": {"cpus": 1, "gpus": 0.5}}
    trials = run(tmp_path, "cuda_sharing", half)
    assert trials[STATUS_COLUMN].tolist() == ["completed", "completed"], trials.get(REASON_COLUMN)
    assert all(str(ids).isdigit() for ids in trials[GPU_IDS_COLUMN])
    assert all(device.startswith("cuda (") for device in trials[f"{RUNTIME_COLUMN}.device"])
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert set(trials[f"{RUNTIME_COLUMN}.precision"]) == {precision}
    assert trials.start_time[1] < trials.end_time[0]  # both held half a GPU at once
    assert (trials["metrics.test/acc"] > 0.1).all()  # above chance on 10 classes: they trained


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_two_worker_trial_trains_with_a_gpu_per_worker(tmp_path):
    ddp = {"name": "ddp", "method": "full_ft", "resources": {"cpus": 1, "gpus": 1, "workers": 2}}
    trials = run(tmp_path, "cuda_ddp", ddp)
    assert trials[STATUS_COLUMN].tolist() == ["completed"], trials.get(REASON_COLUMN)
    first, second = trials[GPU_IDS_COLUMN].iloc[0].split(";")
    assert first != second
    assert trials[f"{RUNTIME_COLUMN}.device"].iloc[0].startswith("cuda (")
