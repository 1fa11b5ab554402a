"""GPU scheduling on a machine without one: Ray is told it has a GPU (`num_gpus=1`) and schedules trials on it.

Ray hands out the declared GPU like a real one (its id, "0", in the trial's accelerator ids and
CUDA_VISIBLE_DEVICES) but torch sees no CUDA device, so trials that should train set `train.device: cpu`.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest

from clipstudy.errors import ConfigError
from clipstudy.studyfile import Resources, Study
from clipstudy.tracking.schema import ARM_COLUMN, GPU_IDS_COLUMN, REASON_COLUMN, RESOURCES_COLUMN, STATUS_COLUMN
from tests.study.conftest import write_study

BASE = {
    "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
    "data": {"name": "synthetic", "num_classes": 4, "samples_per_class": 24},
    "train": {"epochs": 2, "batch_size": 16, "device": "cpu"},
}


def study(name: str, arms: list[dict], **settings) -> dict:
    return {"name": name, "base": BASE, "scheduler": {"kind": "fifo"}, "max_failures": 0, "arms": arms, **settings}


@pytest.fixture(scope="module")
def one_fake_gpu():
    """An in-process Ray instance with 2 CPUs and one declared GPU; `run_study` uses it as it is."""
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def run(folder, spec: dict):
    from clipstudy.study.runner import RunOptions, run_study

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return run_study(write_study(folder, spec), RunOptions(local=True, workdir=str(folder)))


def arm_trials(trials, arm: str):
    return trials[trials[ARM_COLUMN] == arm].sort_values("start_time").reset_index(drop=True)


SHARING = study(
    "gpu_sharing",
    [
        {"name": "half", "method": "full_ft", "trials": 2, "resources": {"cpus": 0.5, "gpus": 0.5}},
        {"name": "whole", "method": "linear_probe", "trials": 2, "resources": {"cpus": 0.5, "gpus": 1}},
        {
            "name": "auto_device",
            "method": "linear_probe",
            "config": {"train": {"device": "auto"}},
            "resources": {"cpus": 1, "gpus": 1},
        },
    ],
)


@pytest.fixture(scope="module")
def sharing_study(one_fake_gpu, tmp_path_factory):
    return run(tmp_path_factory.mktemp("gpu_sharing"), SHARING)


@pytest.mark.slow
def test_half_gpu_trials_share_the_gpu_at_the_same_time(sharing_study):
    half = arm_trials(sharing_study, "half")
    assert half[STATUS_COLUMN].tolist() == ["completed", "completed"]
    assert half[GPU_IDS_COLUMN].tolist() == ["0", "0"]
    assert half[f"{RESOURCES_COLUMN}.gpus"].tolist() == ["0.5", "0.5"]
    # Overlap: the second trial started before the first ended. On one GPU, two 0.5-GPU trials (of
    # full_ft, several seconds each) start together; with whole GPUs they could only run one by one.
    assert half.start_time[1] < half.end_time[0]


@pytest.mark.slow
def test_whole_gpu_trials_on_one_gpu_run_one_after_the_other(sharing_study):
    whole = arm_trials(sharing_study, "whole")
    assert whole[STATUS_COLUMN].tolist() == ["completed", "completed"]
    assert whole[GPU_IDS_COLUMN].tolist() == ["0", "0"]
    # The second trial gets the GPU once the first releases it, after its run was ended.
    assert whole.start_time[1] >= whole.end_time[0]


@pytest.mark.slow
def test_a_trial_given_a_gpu_torch_cannot_see_fails_with_the_reason(sharing_study):
    trial = arm_trials(sharing_study, "auto_device").iloc[0]
    assert trial[STATUS_COLUMN] == "failed" and trial[GPU_IDS_COLUMN] == "0"
    reason = trial[REASON_COLUMN]
    assert "Ray gave this trial GPU 0, but torch" in reason and "sees no CUDA device" in reason
    assert "resources.gpus: 0" in reason


def test_a_worker_wanting_more_gpus_than_any_node_has_is_refused_before_any_trial(one_fake_gpu, tmp_path):
    spec = study("too_many_gpus", [{"name": "full_ft", "method": "full_ft"}], resources={"cpus": 1, "gpus": 2})
    with pytest.raises(ConfigError, match=r"resources: a worker needs 1 CPU and 2 GPU, but .* has 2 CPU and 1 GPU"):
        run(tmp_path, spec)
    assert not (tmp_path / "mlflow.db").exists()  # refused before the study's MLflow run was opened


def test_workers_wanting_more_gpus_than_the_instance_has_are_refused(one_fake_gpu, tmp_path):
    spec = study(
        "two_gpu_workers", [{"name": "full_ft", "method": "full_ft"}], resources={"cpus": 0.5, "gpus": 1, "workers": 2}
    )
    with pytest.raises(ConfigError, match=r"resources: a trial needs .*2 workers.* GPU"):
        run(tmp_path, spec)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_worker_group_given_a_gpu_is_placed_and_set_up_for_nccl(one_fake_gpu, tmp_path):
    """A worker in its own actor (`in_process: false`, the path of multi-worker trials) holding half the GPU is
    placed, and Ray Train sets its process group up with NCCL (use_gpu=True). NCCL needs CUDA, so here the trial
    fails there, before training; on a GPU it trains. (Two such workers are placed on the one GPU too and fail
    the same way here; on a real GPU, NCCL would refuse two ranks on one device: ray-project/ray#48012.)"""
    resources = {"cpus": 0.5, "gpus": 0.5, "in_process": False}
    trials = run(tmp_path, study("gpu_worker_group", [{"name": "ddp", "method": "full_ft"}], resources=resources))
    assert trials[STATUS_COLUMN].tolist() == ["failed"]
    assert trials[REASON_COLUMN].iloc[0] == "ValueError: ProcessGroupNCCL is only supported with GPUs, no GPUs found!"


# ------------------------------------------------------------------------------------------ --local defaults


def local_defaults_on(study: Study, gpus: int, cores: int) -> Study:
    import torch

    from clipstudy.study.runner import local_defaults

    with (
        mock.patch.object(torch.cuda, "is_available", return_value=gpus > 0),
        mock.patch.object(torch.cuda, "device_count", return_value=gpus),
        mock.patch.object(os, "cpu_count", return_value=cores),
    ):
        return local_defaults(study)


ARMS = [{"name": "lora", "method": "lora"}]


@pytest.mark.parametrize(("gpus", "cores", "cpus"), [(1, 8, 8), (2, 8, 4), (2, 3, 1), (4, 2, 1)])
def test_local_on_a_gpu_machine_gives_each_trial_one_gpu_and_its_share_of_the_cores(gpus, cores, cpus):
    resolved = local_defaults_on(Study.model_validate({"name": "s", "arms": ARMS}), gpus, cores)
    assert resolved.resources == Resources(cpus=cpus, gpus=1)


def test_local_leaves_a_study_with_resources_as_it_is():
    given = Study.model_validate({"name": "s", "arms": ARMS, "resources": {"cpus": 2, "gpus": 0.25}})
    assert local_defaults_on(given, gpus=2, cores=8).resources == Resources(cpus=2, gpus=0.25)
    explicit_cpu_only = Study.model_validate({"name": "s", "arms": ARMS, "resources": {"cpus": 1}})
    assert local_defaults_on(explicit_cpu_only, gpus=1, cores=8).resources == Resources(cpus=1, gpus=0)


def test_local_without_a_gpu_keeps_the_cpu_defaults():
    resolved = local_defaults_on(Study.model_validate({"name": "s", "arms": ARMS}), gpus=0, cores=8)
    assert resolved.resources == Resources()
