"""Run a study on Ray Tune: one Tuner per arm (its own search space, searcher and ASHA bracket).

Optuna proposes configurations (TPE by default, seeded; random and grid also) with its study in
SQLite beside the MLflow store, so `optuna-dashboard sqlite:///optuna.db` opens it. ASHA stops
hopeless trials after any epoch. A study interrupted anywhere continues with `resume=True`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import yaml
from ray import tune

from clipstudy.errors import ConfigError, StudyInterrupted
from clipstudy.study.cluster import check_feasible
from clipstudy.study.driver import ArmSpec, trial_driver
from clipstudy.study.feasibility import DRIVER_CPUS, holds_driver
from clipstudy.study.progress import StudyProgress, say
from clipstudy.study.protocol import RUN_ID, was_pruned
from clipstudy.study.search import OPTUNA_DB, num_samples, scheduler, searcher
from clipstudy.study.stopping import StopRequest
from clipstudy.studyfile import Arm, Resources, Study, load_study, warn_unread_overrides
from clipstudy.tracking import read, recovery, runs, store


class StatusCallback(tune.Callback):
    """Marks MLflow child runs pruned (ASHA) or failed (a trial that died without saying why)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if was_pruned(result) and RUN_ID in result:
            runs.set_status(self.tracking_uri, result[RUN_ID], "pruned")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if RUN_ID in result:
            reason = f"trial errored: {trial.error_file or 'see the Ray logs'}"
            recovery.mark_failed_if_running(self.tracking_uri, result[RUN_ID], reason)


@dataclass
class RunOptions:
    arms: list[str] | None = None
    overrides: list[str] | None = None
    local: bool = False
    address: str | None = None
    resume: bool = False
    workdir: str = "."
    cluster_config: str | None = None
    """A cluster launcher config (cluster.yaml) to check the study's resources against, instead of what the
    connected cluster says about its node types."""

    def __post_init__(self) -> None:
        if self.local and self.cluster_config:
            raise ConfigError("--cluster describes a cluster to run on, --local runs on this machine: drop one")


def trial_resources(resources: Resources) -> dict[str, float]:
    """In-process trials hold their worker's resources; a worker group's driver only waits on its workers and
    holds a token CPU share (Tune refuses a trial with no resources at all)."""
    if holds_driver(resources):
        return {"cpu": DRIVER_CPUS}
    return {"cpu": resources.cpus, "gpu": resources.gpus}


def local_defaults(study: Study) -> Study:
    """With --local and no `resources` in the study: one GPU per trial if this machine has one."""
    import torch

    if "resources" in study.model_fields_set or not torch.cuda.is_available():
        return study
    cpus = max(1, (os.cpu_count() or 1) // torch.cuda.device_count())
    return study.model_copy(update={"resources": Resources(cpus=cpus, gpus=1)})


QUIET_RAY_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",  # Tune's legacy reporter, which verbose=0 silences (the new one still prints tables)
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # snapshots per epoch are wanted (resume)
}


def quiet_ray() -> None:
    """clipstudy prints its own progress (`StudyProgress`): silence Tune's tables and advice in this driver."""
    for name, value in QUIET_RAY_ENV.items():
        os.environ.setdefault(name, value)


def connect(options: RunOptions) -> bool:
    """Start (--local) or join Ray unless this process already has; True when it was started or joined here."""
    if ray.is_initialized():
        return False
    if options.local:
        ray.init(include_dashboard=False, configure_logging=False)
    else:
        address = options.address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise ConfigError("no Ray cluster given: pass --local, --address ADDR, or set RAY_ADDRESS")
        ray.init(address=address, configure_logging=False)
    return True


def restored_trial_outcomes(path: str) -> dict[str, str | None]:
    """The trials in an interrupted experiment's last snapshot, each with the outcome Tune recorded
    (`pruned`, `failed`, `completed`) or None when it is unfinished and will continue (none at all if the
    experiment stopped before its first snapshot)."""
    try:
        trials = tune.ExperimentAnalysis(path).trials
    except ValueError:
        return {}
    outcomes: dict[str, str | None] = {}
    for trial in trials:
        if trial.status == "ERROR":
            outcomes[trial.trial_id] = "failed"
        elif trial.status == "TERMINATED":
            outcomes[trial.trial_id] = "pruned" if was_pruned(trial.last_result) else "completed"
        else:
            outcomes[trial.trial_id] = None
    return outcomes


def run_arm(study: Study, arm: Arm, spec: ArmSpec, storage_url: str, run_tag: str, resume: bool) -> None:
    epochs = study.arm_config(arm, overrides=spec.overrides).train.epochs
    experiment = f"{study.name}.{arm.name}"
    path = f"{spec.storage_path.rstrip('/')}/{experiment}"
    restored = resume and tune.Tuner.can_restore(path)
    if resume and not restored:
        say(f"{arm.name}: no saved search state at {path}: the arm starts from the beginning")
    if resume:  # before any trial of the arm runs: runs still open now were left by the stopped driver
        known = restored_trial_outcomes(path) if restored else {}
        closed = recovery.close_interrupted_trials(spec.tracking_uri, spec.parent_run_id, arm.name, known)
        if closed:
            say(f"{arm.name}: closed {len(closed)} trial run(s) the stopped study left open")
        unclaimed = recovery.unclaimed_completed_runs(spec.tracking_uri, spec.parent_run_id, arm.name, known)
        spec = dataclasses.replace(spec, unclaimed=tuple(unclaimed))
    trainable = tune.with_resources(tune.with_parameters(trial_driver, spec=spec), trial_resources(spec.resources))
    if restored:
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher(study, arm, storage_url, run_tag),
                max_concurrent_trials=study.max_concurrent,
                scheduler=scheduler(study, epochs),
                num_samples=num_samples(study, arm),
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=spec.storage_path,
                callbacks=[
                    StatusCallback(spec.tracking_uri),
                    StudyProgress(arm.name, study.metric, study.mode, num_samples(study, arm)),
                ],
                failure_config=tune.FailureConfig(max_failures=spec.max_failures if spec.in_process else 0),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                verbose=0,  # StudyProgress reports instead
            ),
        )
    tuner.fit()


def resume_command(study_file: Path, options: RunOptions) -> str:
    """The `clipstudy run` command line that continues this invocation."""
    words = ["clipstudy", "run", str(study_file)]
    words += ["--local"] if options.local else []
    words += [f"--address {options.address}"] if options.address else []
    words += [f"--cluster {options.cluster_config}"] if options.cluster_config else []
    words += [f"--arm {name}" for name in options.arms or []]
    words += [f"--set {shlex.quote(text)}" for text in options.overrides or []]
    return " ".join([*words, "--resume"])


def run_study(study: str | Path | Study, options: RunOptions | None = None) -> pd.DataFrame:
    """Run (or resume) every arm of a study, or the named ones; returns one row per trial of this invocation
    (a resumed one included), as `clipstudy report` reads it by default.

    With `local`, the trials' weights and data are checked here first (`engine.preflight`): a missing one raises
    its error before Ray starts or anything is recorded.

    `study` is a study file, or a `Study` (e.g. loaded with `load_study` and changed in Python);
    the study as run is attached to the MLflow parent run either way.
    """
    options = options or RunOptions()
    workdir = Path(options.workdir).resolve()
    if isinstance(study, Study):
        study_file = workdir / "runs" / f"{study.name}.yaml"
        study_file.parent.mkdir(parents=True, exist_ok=True)
        study_file.write_text(
            yaml.safe_dump(study.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
        )
    else:
        study_file = Path(study)
    study = load_study(study_file)
    if options.local:
        study = local_defaults(study)
    arms = [study.arm(name) for name in options.arms] if options.arms else study.arms
    overrides = list(options.overrides or [])
    configs = [(arm.name, study.arm_config(arm, overrides=overrides, where=f"{study_file}: ")) for arm in arms]
    warn_unread_overrides(arms, overrides)
    uri = store.resolve_tracking_uri(study.tracking_uri, workdir)
    store.check_reachable(uri)
    if options.local:  # the trials run here: missing weights or data stop the study now, not in every trial
        from clipstudy.engine.preflight import check_inputs  # (on a cluster the nodes hold the data and weights)

        check_inputs(configs)
    quiet_ray()
    started = connect(options)
    check_feasible(study, arms, options.local, options.cluster_config, where=f"{study_file}: ")
    parent = runs.start_study_run(uri, study.name, study_file, resume=options.resume)
    storage_path = study.storage or str(workdir / "runs")
    storage_url = f"sqlite:///{workdir / OPTUNA_DB}"
    status = "FAILED"
    try:
        with StopRequest(f"Continue with: {resume_command(study_file, options)}") as stop:
            for arm in arms:
                stop.check(arm.name)
                spec = ArmSpec(
                    study, arm.name, uri, parent, storage_path, study.arm_resources(arm), study.max_failures, overrides
                )
                run_arm(study, arm, spec, storage_url, parent[:8], options.resume)
                stop.check(arm.name)
        status = "FINISHED"
    except (StudyInterrupted, KeyboardInterrupt):
        status = "KILLED"
        recovery.mark_trials_killed(uri, parent)
        raise
    finally:
        runs.finish_study_run(uri, parent, status)
        if started:  # stop the trials' idle actors now, not at interpreter exit (tracebacks on SIGTERM)
            ray.shutdown()
    trials = read.trial_runs(uri, study.name, parent)
    trials.attrs.update(tracking_uri=uri, metric=study.metric, mode=study.mode)
    return trials
