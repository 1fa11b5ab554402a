"""The worker side of a trial: `train_fn_per_worker` runs THE engine and reports every epoch.

It lives apart from `clipstudy.study.driver` so that the study driver, which only schedules trials, never
imports torch and the engine (about half of its start-up time; see docs/benchmarks.md): the trial
actor imports this module when it builds its `TorchTrainer`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray.train
import ray.tune
import torch
import torch.distributed as dist

from clipstudy.config import TrialConfig
from clipstudy.engine import Callback, Trainer
from clipstudy.errors import TrialFailed
from clipstudy.study.protocol import PLANNED, RUN_ID, quiet_ray_logs
from clipstudy.tracking import runs

CHECKPOINT_FILE = "trial.pt"


class Reporter(Callback):
    """Per epoch: metrics to MLflow (rank 0) and to Ray with an epoch checkpoint.

    The last epoch is reported only after the trial's result is recorded (`report_final`): once a
    trial reaches its last epoch, Tune (and ASHA at max_t) may stop it at any moment.
    """

    def __init__(self, tracking_uri: str, run_id: str, in_process: bool, rank: int):
        self.tracking_uri, self.run_id, self.in_process, self.rank = tracking_uri, run_id, in_process, rank
        self.pending: tuple[Trainer, dict[str, float]] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.rank == 0:
            runs.log_epoch(self.tracking_uri, self.run_id, metrics, epoch)
        if epoch >= trainer.num_epochs:
            self.pending = (trainer, metrics)
        else:
            self.report(trainer, metrics)

    def report_final(self) -> None:
        if self.pending is not None:
            self.report(*self.pending)

    def report(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        report = {**metrics, PLANNED: trainer.num_epochs, RUN_ID: self.run_id}
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = None
            if self.rank == 0:
                trainer.save_checkpoint(Path(directory) / CHECKPOINT_FILE)
                kind = ray.tune.Checkpoint if self.in_process else ray.train.Checkpoint  # whom it is reported to
                checkpoint = kind.from_directory(directory)
            if self.in_process:
                ray.tune.report(report, checkpoint=checkpoint)
            else:
                ray.train.report(report, checkpoint=checkpoint)


def latest_checkpoint(in_process: bool) -> ray.train.Checkpoint | None:
    return ray.tune.get_checkpoint() if in_process else ray.train.get_checkpoint()


def assigned_gpus() -> list[str]:
    """The GPU ids Ray gave this worker, as its node numbers them (none outside Ray)."""
    if not ray.is_initialized():
        return []
    ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    return sorted(ids, key=lambda gpu: (len(gpu), gpu))


def every_worker(values: list[str]) -> list[list[str]]:
    """`values` of every worker of the trial in rank order: a collective, so every worker must call it."""
    if not (dist.is_available() and dist.is_initialized()):
        return [values]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, values)
    return gathered


def check_gpus_usable(cfg: TrialConfig, gpus: list[str]) -> None:
    """Fail a trial given GPUs that torch cannot see, rather than train on CPU while holding them.

    Ray gives out only the GPUs a node declared, and torch sees those wherever the driver and a CUDA build
    of torch work; a trial silently on CPU would be slow and counted in GPU-hours. `train.device: cpu`
    trains on CPU on purpose (the tests' declared GPUs do that).
    """
    if gpus and cfg.train.device == "auto" and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise TrialFailed(
            f"Ray gave this trial GPU {','.join(gpus)}, but torch {torch.__version__} ({build}) sees no CUDA "
            "device on its node; fix the node's NVIDIA driver or torch install, or set resources.gpus: 0 to "
            "train on CPU"
        )


def train_fn_per_worker(loop_config: dict[str, Any]) -> None:
    """Run the engine for one trial on one worker (also callable without Ray for debugging)."""
    quiet_ray_logs()  # a worker group's workers are processes of their own
    cfg = TrialConfig.model_validate(loop_config["config"])
    in_process = loop_config["in_process"]
    rank = 0 if in_process else ray.train.get_context().get_world_rank()
    gpus = assigned_gpus()
    per_worker = every_worker(gpus)
    if rank == 0:
        runs.log_gpu_ids(loop_config["tracking_uri"], loop_config["run_id"], per_worker)
    check_gpus_usable(cfg, gpus)
    reporter = Reporter(loop_config["tracking_uri"], loop_config["run_id"], in_process, rank)
    checkpoint = latest_checkpoint(in_process)
    if checkpoint is None:
        trainer = Trainer(cfg, [reporter])
    else:
        with checkpoint.as_directory() as directory:
            trainer = Trainer(cfg, [reporter], resume_from=Path(directory) / CHECKPOINT_FILE)
    if rank == 0:
        runtime = {**trainer.runtime, **trainer.built.describe()}  # + the resolved activation and preprocessing
        runs.log_runtime(loop_config["tracking_uri"], loop_config["run_id"], runtime)
    result = trainer.fit()
    if rank == 0:
        runs.log_result(loop_config["tracking_uri"], loop_config["run_id"], result)
        runs.set_status(loop_config["tracking_uri"], loop_config["run_id"], "completed")
    reporter.report_final()
