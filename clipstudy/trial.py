"""One Tune trial: a driver (a Tune function trainable) that launches a Ray Train `TorchTrainer`.

Ray Train V2 pattern: `trial_driver` resolves the trial's config, opens its MLflow child run and
runs a `TorchTrainer` around `train_fn_per_worker`, which runs THE engine. Every epoch the worker
logs metrics to MLflow and reports them with an epoch checkpoint, so ASHA can stop the trial after
any epoch and a restarted trial continues from its last epoch.

One-worker trials run in Ray Train's in-process mode (`num_workers=0`): the worker is the trial's
own process, which saves starting a second actor per trial (see docs/benchmarks.md); the worker
then reports to Tune directly, and Tune's FailureConfig restarts it from its last checkpoint.
Multi-worker trials use a worker group, `TuneReportCallback` and Ray Train's FailureConfig.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import ray.tune
from ray.train import Checkpoint, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from clipstudy import tracking
from clipstudy.config import TrialConfig
from clipstudy.engine import Callback, Trainer
from clipstudy.errors import TrialFailed
from clipstudy.studyfile import Resources, Study

CHECKPOINT_FILE = "trial.pt"
RUN_ID = "mlflow_run_id"
PLANNED = "epochs_planned"


@dataclass
class ArmSpec:
    """What every trial of one arm shares (pickled into each trial)."""

    study: Study
    arm: str
    tracking_uri: str
    parent_run_id: str
    storage_path: str
    resources: Resources
    max_failures: int
    overrides: list[str] = field(default_factory=list)

    @property
    def in_process(self) -> bool:
        return self.resources.workers == 1 and self.resources.in_process


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
            tracking.log_epoch(self.tracking_uri, self.run_id, metrics, epoch)
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
                checkpoint = Checkpoint.from_directory(directory)
            if self.in_process:
                ray.tune.report(report, checkpoint=checkpoint)
            else:
                ray.train.report(report, checkpoint=checkpoint)


def latest_checkpoint(in_process: bool) -> Checkpoint | None:
    return ray.tune.get_checkpoint() if in_process else ray.train.get_checkpoint()


def train_fn_per_worker(loop_config: dict[str, Any]) -> None:
    """Run the engine for one trial on one worker (also callable without Ray for debugging)."""
    cfg = TrialConfig.model_validate(loop_config["config"])
    in_process = loop_config["in_process"]
    rank = 0 if in_process else ray.train.get_context().get_world_rank()
    reporter = Reporter(loop_config["tracking_uri"], loop_config["run_id"], in_process, rank)
    checkpoint = latest_checkpoint(in_process)
    if checkpoint is None:
        result = Trainer(cfg, [reporter]).fit()
    else:
        with checkpoint.as_directory() as directory:
            trainer = Trainer(cfg, [reporter], resume_from=Path(directory) / CHECKPOINT_FILE)
        result = trainer.fit()
    if rank == 0:
        tracking.log_result(loop_config["tracking_uri"], loop_config["run_id"], result)
        tracking.set_status(loop_config["tracking_uri"], loop_config["run_id"], "completed")
    reporter.report_final()


def trial_driver(params: dict[str, Any], spec: ArmSpec) -> None:
    """The Tune trainable of one trial: `params` are the values the searcher sampled."""
    study, arm = spec.study, spec.study.arm(spec.arm)
    cfg = study.arm_config(arm, overrides=spec.overrides, params=params)
    trial_id = ray.tune.get_context().get_trial_id()
    done = tracking.completed_trial(spec.tracking_uri, study.name, spec.parent_run_id, trial_id)
    if done is not None:  # finished before an interrupted study recorded it in Tune: keep it as it is
        ray.tune.report({**done, PLANNED: done["epoch"]})
        return
    run_id = tracking.trial_run(spec.tracking_uri, study.name, spec.parent_run_id, arm.name, cfg.method, trial_id, cfg)
    loop_config = {
        "config": cfg.model_dump(mode="json"),
        "run_id": run_id,
        "tracking_uri": spec.tracking_uri,
        "in_process": spec.in_process,
    }
    try:
        make_trainer(spec, loop_config, trial_id).fit()
    except Exception as error:
        tracking.set_status(spec.tracking_uri, run_id, "failed", failure_reason(error))
        raise


def make_trainer(spec: ArmSpec, loop_config: dict[str, Any], trial_id: str) -> TorchTrainer:
    if spec.in_process:
        return TorchTrainer(
            train_fn_per_worker, train_loop_config=loop_config, scaling_config=ScalingConfig(num_workers=0)
        )
    from ray.tune.integration.ray_train import TuneReportCallback

    resources = spec.resources
    return TorchTrainer(
        train_fn_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=resources.workers,
            use_gpu=resources.gpus > 0,
            resources_per_worker={"CPU": resources.cpus, "GPU": resources.gpus},
        ),
        run_config=RunConfig(
            name=f"{spec.study.name}.{spec.arm}.{trial_id}",
            storage_path=spec.storage_path,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            callbacks=[TuneReportCallback()],
        ),
    )


def failure_reason(error: BaseException) -> str:
    """The innermost clipstudy reason when there is one (e.g. a non-finite loss), else the error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TrialFailed):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    return text if len(text) < 2000 else text[-2000:]
