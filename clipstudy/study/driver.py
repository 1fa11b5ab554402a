"""One Tune trial: a driver (a Tune function trainable) that launches a Ray Train `TorchTrainer`.

Ray Train V2 pattern: `trial_driver` resolves the trial's config, opens its MLflow child run and
runs a `TorchTrainer` around `train_fn_per_worker` (`clipstudy.study.worker`, imported only in the
trial's process), which runs THE engine. Every epoch the worker
logs metrics to MLflow and reports them with an epoch checkpoint, so ASHA can stop the trial after
any epoch and a restarted trial continues from its last epoch.

One-worker trials run in Ray Train's in-process mode (`num_workers=0`): the worker is the trial's
own process, which saves starting a second actor per trial (see docs/benchmarks.md); the worker
then reports to Tune directly, and Tune's FailureConfig restarts it from its last checkpoint.
Multi-worker trials use a worker group, `TuneReportCallback` and Ray Train's FailureConfig.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray.tune
from ray.train import FailureConfig, RunConfig, ScalingConfig

from clipstudy.errors import ConfigError, TrialFailed
from clipstudy.study.protocol import PLANNED, quiet_ray_logs
from clipstudy.studyfile import Resources, Study
from clipstudy.tracking import recovery, runs
from clipstudy.tracking.schema import FAILURE_FILE

if TYPE_CHECKING:
    from ray.train.torch import TorchTrainer


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
    unclaimed: tuple[str, ...] = ()
    """On resume: completed runs of trials Tune lost (`recovery.unclaimed_completed_runs`)."""

    @property
    def in_process(self) -> bool:
        return self.resources.workers == 1 and self.resources.in_process


def trial_driver(params: dict[str, Any], spec: ArmSpec) -> None:
    """The Tune trainable of one trial: `params` are the values the searcher sampled."""
    quiet_ray_logs()
    study, arm = spec.study, spec.study.arm(spec.arm)
    cfg = study.arm_config(arm, overrides=spec.overrides, params=params)
    trial_id = ray.tune.get_context().get_trial_id()
    done = recovery.completed_trial(spec.tracking_uri, study.name, spec.parent_run_id, trial_id)
    for run_id in spec.unclaimed if done is None else ():
        done = recovery.adopt_completed_run(spec.tracking_uri, run_id, trial_id, cfg)
        if done is not None:
            break
    if done is not None:  # finished before an interrupted study recorded it in Tune: keep it as it is
        ray.tune.report({**done, PLANNED: done["epoch"]})
        return
    reason = recovery.failed_for_good(spec.tracking_uri, study.name, spec.parent_run_id, trial_id)
    if reason is not None:  # Tune's retry of a trial that would fail the same way again: end it, train nothing
        raise TrialFailed(f"{reason} (its restart ends here: from its checkpoint the same config fails the same way)")
    resources = {"cpus": spec.resources.cpus, "gpus": spec.resources.gpus, "workers": spec.resources.workers}
    run_id = runs.trial_run(
        spec.tracking_uri, study.name, spec.parent_run_id, arm.name, cfg.method, trial_id, cfg, resources
    )
    loop_config = {
        "config": cfg.model_dump(mode="json"),
        "run_id": run_id,
        "tracking_uri": spec.tracking_uri,
        "in_process": spec.in_process,
    }
    try:
        make_trainer(spec, loop_config, trial_id).fit()
    except Exception as error:
        runs.log_text(spec.tracking_uri, run_id, error_text(error), FAILURE_FILE)
        runs.set_status(spec.tracking_uri, run_id, "failed", failure_reason(error), for_good=fails_again(error))
        raise


def make_trainer(spec: ArmSpec, loop_config: dict[str, Any], trial_id: str) -> TorchTrainer:
    """The trial's `TorchTrainer` (built in the trial's process: it imports torch and the engine)."""
    from ray.train.torch import TorchTrainer

    from clipstudy.study.worker import train_fn_per_worker

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


ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def failure_reason(error: BaseException) -> str:
    """One line for the failure-reason tag: the innermost clipstudy reason when there is one (e.g. a
    non-finite loss), else the last line of the error, which is where a traceback says what went wrong
    (Ray Train hands a worker's failure to the driver as the text of its traceback)."""
    own = next((seen for seen in causes(error) if isinstance(seen, TrialFailed)), None)
    if own is not None:
        return own.reason
    lines = [line.strip() for line in error_text(error).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    return last.removeprefix(f"{TrialFailed.__module__}.{TrialFailed.__name__}: ")[:2000]


def fails_again(error: BaseException) -> bool:
    """Whether `error` comes from clipstudy's own checks of the trial (a non-finite loss, an invalid config),
    which give the same error wherever and however often the trial restarts from its checkpoint. Missing data
    or weights may be a node's (another node may have them), and a crash (a killed worker) is not the trial's:
    those stay retried. A multi-worker trial's worker errors arrive as text, so they stay retried too."""
    return any(isinstance(seen, TrialFailed | ConfigError) for seen in causes(error))


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it was raised from or during, innermost last."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def error_text(error: BaseException) -> str:
    """The error with its traceback, without terminal colour codes: what `failure.txt` records."""
    text = "".join(traceback.format_exception(error))
    return ANSI_CODES.sub("", text)
