"""The MLflow record of a study: one experiment, one parent run per invocation, one child run per trial.

Every function takes the tracking URI and explicit run ids and talks to MLflow through `MlflowClient`,
never through the global active run, so the driver and the Ray workers (other processes, other working
directories) can all write to the same store. See DESIGN.md, "MLflow record".
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from clipstudy.config import TrialConfig, flatten
from clipstudy.errors import ClipstudyError, did_you_mean

if TYPE_CHECKING:
    from clipstudy.engine import TrialResult

__all__ = [
    "ARM",
    "GPU_IDS",
    "METHOD",
    "REASON",
    "ROLE",
    "RUNTIME",
    "STATUS",
    "TRIAL_ID",
    "adopt_completed_run",
    "check_reachable",
    "close_interrupted_trials",
    "finish_study_run",
    "log_epoch",
    "log_gpu_ids",
    "log_result",
    "log_runtime",
    "log_text",
    "mark_failed_if_running",
    "mark_trials_killed",
    "provenance_tags",
    "resolve_tracking_uri",
    "set_status",
    "start_study_run",
    "trial_run",
    "trial_runs",
    "unclaimed_completed_runs",
]

ROLE = "clipstudy.role"
ARM = "clipstudy.arm"
METHOD = "clipstudy.method"
TRIAL_ID = "clipstudy.trial_id"
STATUS = "clipstudy.status"
REASON = "clipstudy.failure_reason"
RESOURCES = "clipstudy.resources"
"""Prefix of the per-trial resource tags (`.cpus`, `.gpus`, `.workers`): what compute-hours are counted in."""
GPU_IDS = f"{RESOURCES}.gpu_ids"
"""The GPUs Ray assigned to a trial, as its node numbers them: per worker in rank order, `;` between workers
and `,` within one (e.g. `0` for a trial alone on GPU 0, `0;0` for two workers sharing it)."""
RUNTIME = "clipstudy.runtime"
"""Prefix of the tags of what a trial really ran on: `.device` (`cpu`, `cuda (NVIDIA H100 80GB HBM3)`) and
`.precision` (`bf16`, `fp16`, `fp32`), with `auto` resolved."""
PARENT = "mlflow.parentRunId"
ADOPTED = "clipstudy.adopted_from"
"""On a trial run taken over on resume by a new Tune trial with the same config: the trial id it had."""

FINAL_STATUSES = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
INTERRUPTED = "interrupted: the study driver stopped before this trial was checkpointed; resumed as a new trial"
TUNE_ENDED = "trial errored, or ended without recording its result, before the study driver stopped (see the Ray logs)"
VERSIONED_PACKAGES = ("torch", "open_clip_torch", "peft", "ray", "optuna", "mlflow", "clipstudy")
STUDY_ARTIFACT_DIR = "study"
DB_FILENAME = "mlflow.db"

# MLflow's batch limits (per log_batch request).
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000

# SQLite allows one writer at a time; concurrent trials may see "database is locked" past sqlite's own
# 5 s busy timeout. Such writes are retried for up to this long.
_LOCK_RETRY_S = 60.0

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------- store


def resolve_tracking_uri(study_uri: str | None, workdir: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI > the study's `tracking_uri` > an embedded SQLite store in `workdir`.

    SQLite paths are made absolute (relative ones against `workdir`) so Ray workers running in another
    working directory write to the same store.
    """
    workdir = Path(workdir).expanduser().resolve()
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip() or (study_uri or "").strip()
    if not uri:
        return f"sqlite:///{workdir / DB_FILENAME}"
    path = sqlite_file(uri)
    if path is None:
        return uri
    query = uri.partition("?")[2]
    absolute = path if path.is_absolute() else workdir / path
    return f"sqlite:///{absolute}" + (f"?{query}" if query else "")


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for other schemes and in-memory databases)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:") :]
    if not rest.startswith("///"):
        return None  # sqlite:// or sqlite://:memory: -> in memory
    path = rest[3:].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser()


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with the fix, if the tracking store cannot be used (no MLflow retry loop)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        _check_server(uri, timeout)
    elif scheme == "sqlite":
        path = sqlite_file(uri)
        if path is not None:
            _check_folder(uri, path.parent)
    elif scheme == "file":
        _check_folder(uri, Path(urllib.parse.urlparse(uri).path))
    elif not scheme and ("/" in uri or uri.startswith((".", "~"))):  # a plain folder: MLflow's file store
        _check_folder(uri, Path(uri).expanduser())


def _check_folder(uri: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ClipstudyError(
            f"MLflow tracking store {uri}: cannot create folder {folder} ({error}); "
            "choose a writable location (tracking_uri in the study, or MLFLOW_TRACKING_URI)"
        ) from error
    if not os.access(folder, os.W_OK):
        raise ClipstudyError(
            f"MLflow tracking store {uri}: folder {folder} is not writable; "
            "choose a writable location (tracking_uri in the study, or MLFLOW_TRACKING_URI)"
        )


def _check_server(uri: str, timeout: float) -> None:
    fix = (
        "start the server (e.g. `mlflow server --host 127.0.0.1 --port 5000`) or fix the URI, "
        "or unset MLFLOW_TRACKING_URI (and tracking_uri in the study) to use the embedded SQLite store"
    )
    base = uri.rstrip("/")
    try:
        if _http_status(f"{base}/health", timeout) == 200:
            return
        # Not every deployment exposes /health (proxies, managed servers): try the REST API itself.
        code = _http_status(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ClipstudyError(f"MLflow tracking server {uri} is not reachable ({reason}); {fix}") from error
    if code == 200:
        return
    if code in (401, 403):
        raise ClipstudyError(
            f"MLflow tracking server {uri} refused access (HTTP {code}); set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    raise ClipstudyError(f"{uri} does not answer like an MLflow tracking server (HTTP {code}); {fix}")


def _http_status(url: str, timeout: float) -> int:
    request = urllib.request.Request(url, method="GET", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri)


def _retry(call: Callable[[], T]) -> T:
    """Run a store call, retrying while SQLite reports a lock held by another process."""
    deadline = time.monotonic() + _LOCK_RETRY_S
    delay = 0.05
    while True:
        try:
            return call()
        except MlflowException as error:
            if "database is locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


# --------------------------------------------------------------------------------------------- provenance


def provenance_tags() -> dict[str, str]:
    """Git commit/dirty flag of the clipstudy source (else of the working directory) and package versions."""
    return dict(_provenance())


@functools.lru_cache(maxsize=1)
def _provenance() -> dict[str, str]:
    tags = dict(_git_state())
    for package in VERSIONED_PACKAGES:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        tags[f"clipstudy.version.{package}"] = version
    return tags


def _git_state() -> dict[str, str]:
    unknown = {"clipstudy.git_commit": "unknown", "clipstudy.git_dirty": "unknown"}
    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        commit = _git(folder, "rev-parse", "HEAD")
        if commit:
            changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
            dirty = "unknown" if changes is None else ("true" if changes else "false")
            return {"clipstudy.git_commit": commit, "clipstudy.git_dirty": dirty}
    return unknown


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# ------------------------------------------------------------------------------------------------ runs


def _experiment_id(client: mlflow.MlflowClient, uri: str, study_name: str, create: bool) -> str:
    experiment = _retry(lambda: client.get_experiment_by_name(study_name))
    if experiment is None:
        if not create:
            raise _unknown_study(client, uri, study_name)
        try:
            return _retry(lambda: client.create_experiment(study_name, artifact_location=_artifact_root(uri)))
        except MlflowException as error:
            if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
                raise
            experiment = client.get_experiment_by_name(study_name)  # created meanwhile by another process
    if experiment.lifecycle_stage == "deleted":
        raise ClipstudyError(
            f"MLflow experiment '{study_name}' in {uri} is deleted; restore it "
            f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`), remove it for good "
            "(`mlflow gc`), or rename the study"
        )
    return experiment.experiment_id


def _artifact_root(uri: str) -> str | None:
    """Artifacts of an embedded SQLite store live next to it (MLflow's default `./mlruns` would follow the
    working directory of whichever process creates the experiment); servers choose their own location."""
    path = sqlite_file(uri)
    return (path.parent / "mlruns").as_uri() if path is not None else None


def _unknown_study(client: mlflow.MlflowClient, uri: str, study_name: str) -> ClipstudyError:
    known = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY) if e.name != "Default")
    listing = ", ".join(known) if known else "none"
    return ClipstudyError(
        f"no study '{study_name}' in MLflow store {uri}{did_you_mean(study_name, known)}; known studies: {listing}"
    )


def _tag_filter(key: str, value: str) -> str:
    return f"tags.`{key}` = '{value}'"


def start_study_run(
    uri: str, study_name: str, study_file: str | Path | None, resume: bool, extra_tags: dict | None = None
) -> str:
    """Create (or, with `resume`, reopen the latest) parent run of a study; return its id."""
    client = _client(uri)
    experiment_id = _experiment_id(client, uri, study_name, create=True)
    tags = {ROLE: "study", **provenance_tags(), **{str(k): str(v) for k, v in (extra_tags or {}).items()}}
    run_id = None
    if resume:
        latest = _retry(
            lambda: client.search_runs(
                [experiment_id], _tag_filter(ROLE, "study"), order_by=["attributes.start_time DESC"], max_results=1
            )
        )
        if latest:
            run_id = latest[0].info.run_id
            _retry(lambda: client.update_run(run_id, status="RUNNING"))
    if run_id is None:
        run = _retry(lambda: client.create_run(experiment_id, tags={ROLE: "study"}, run_name=study_name))
        run_id = run.info.run_id
    _retry(lambda: client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()]))
    if study_file is not None:
        _retry(lambda: client.log_artifact(run_id, str(study_file), artifact_path=STUDY_ARTIFACT_DIR))
    return run_id


def finish_study_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Terminate the parent run (`FINISHED`, `FAILED` or `KILLED`)."""
    _retry(lambda: _client(uri).set_terminated(run_id, status=status))


def trial_run(
    uri: str,
    study_name: str,
    parent_run_id: str,
    arm: str,
    method: str,
    trial_id: str,
    config: TrialConfig,
    resources: dict[str, float] | None = None,
) -> str:
    """The child run of one Tune trial: the existing one for (parent, trial_id), else a new one.

    `resources` (cpus, gpus, workers) are tagged so the report can count the compute a trial held.
    """
    client = _client(uri)
    parent = _retry(lambda: client.get_run(parent_run_id))
    experiment_id = parent.info.experiment_id
    existing = _find_trial_run(client, experiment_id, parent_run_id, trial_id)
    if existing is not None:
        if existing.info.status != "RUNNING":  # a trial run again (resume, Tune retry)
            _retry(lambda: client.update_run(existing.info.run_id, status="RUNNING"))
            _retry(lambda: client.set_tag(existing.info.run_id, STATUS, "running"))
        return existing.info.run_id
    tags = {
        PARENT: parent_run_id,
        ROLE: "trial",
        ARM: arm,
        METHOD: method,
        TRIAL_ID: trial_id,
        STATUS: "running",
        **{f"{RESOURCES}.{key}": str(value) for key, value in (resources or {}).items()},
        **provenance_tags(),
    }
    run = _retry(lambda: client.create_run(experiment_id, tags=tags, run_name=f"{arm}/{trial_id}"))
    run_id = run.info.run_id
    params = [Param(key, str(value)) for key, value in flatten(config.model_dump(mode="json")).items()]
    for start in range(0, len(params), _MAX_PARAMS_PER_BATCH):
        chunk = params[start : start + _MAX_PARAMS_PER_BATCH]
        _retry(lambda chunk=chunk: client.log_batch(run_id, params=chunk))
    return run_id


def _find_trial_run(client: mlflow.MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str):
    found = _retry(
        lambda: client.search_runs(
            [experiment_id],
            f"{_tag_filter(TRIAL_ID, trial_id)} and {_tag_filter(PARENT, parent_run_id)}",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
    )
    return found[0] if found else None


def _numeric(metrics: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[str(key)] = float(value)
    return out


def _log_metrics(uri: str, run_id: str, values: dict[str, float], step: int) -> None:
    stamp = int(time.time() * 1000)
    _log_batches(uri, run_id, [Metric(key, value, stamp, step) for key, value in values.items()])


def _log_curves(uri: str, run_id: str, curves: dict[str, list[tuple[int, float]]]) -> None:
    """Series with their own steps (e.g. the WiSE-FT α curve, step = round(100·α)) as metric histories."""
    stamp = int(time.time() * 1000)
    points = [Metric(key, float(value), stamp, int(step)) for key, series in curves.items() for step, value in series]
    _log_batches(uri, run_id, points)


def _log_batches(uri: str, run_id: str, metrics: list[Metric]) -> None:
    client = _client(uri)
    for start in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
        chunk = metrics[start : start + _MAX_METRICS_PER_BATCH]
        _retry(lambda chunk=chunk: client.log_batch(run_id, metrics=chunk))


def log_epoch(uri: str, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    """Log one epoch's numeric values (all but `epoch`) at step=epoch, in one batch."""
    _log_metrics(uri, run_id, _numeric(metrics, skip=("epoch",)), int(epoch))


def log_result(uri: str, run_id: str, result: TrialResult) -> None:
    """Log the final metrics (at the last epoch's step), the result's curves (at their own steps) and the
    result files as artifacts."""
    from clipstudy.tracking.artifacts import write_result  # imports the engine (torch): only when a result is logged

    last = int(result.history[-1].get("epoch", len(result.history) - 1)) if result.history else 0
    _log_metrics(uri, run_id, _numeric(result.metrics), last)
    _log_curves(uri, run_id, result.curves)
    with tempfile.TemporaryDirectory(prefix="clipstudy-result-") as folder:
        write_result(result, folder)
        _retry(lambda: _client(uri).log_artifacts(run_id, folder))


def download_artifact(uri: str, run_id: str, path: str, destination: str | Path) -> Path | None:
    """Fetch one artifact of a run into `destination`; None when the run has no such artifact."""
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(destination), tracking_uri=uri
        )
    except (OSError, MlflowException):
        return None
    return Path(local)


def log_folder(uri: str, run_id: str, folder: str | Path, artifact_path: str) -> None:
    """Attach a folder's files to a run (e.g. a report on the study's parent run)."""
    _retry(lambda: _client(uri).log_artifacts(run_id, str(folder), artifact_path=artifact_path))


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    _retry(lambda: _client(uri).log_text(run_id, text, artifact_file))


def log_gpu_ids(uri: str, run_id: str, per_worker: list[list[str]]) -> None:
    """Tag the GPU ids each worker of a trial was given (`GPU_IDS`); nothing for trials without GPUs."""
    if any(per_worker):
        value = ";".join(",".join(ids) for ids in per_worker)
        _retry(lambda: _client(uri).set_tag(run_id, GPU_IDS, value))


def log_runtime(uri: str, run_id: str, runtime: Mapping[str, str]) -> None:
    """Tag what the trial runs on (`RUNTIME`.device, .precision)."""
    tags = [RunTag(f"{RUNTIME}.{key}", str(value)) for key, value in runtime.items()]
    _retry(lambda: _client(uri).log_batch(run_id, tags=tags))


def set_status(uri: str, run_id: str, status: str, reason: str | None = None) -> None:
    """Tag the trial's outcome (completed/pruned/failed, and why) and terminate its MLflow run."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
    client = _client(uri)
    tags = [RunTag(STATUS, status)]
    if reason is not None:
        tags.append(RunTag(REASON, str(reason)[:5000]))
    _retry(lambda: client.log_batch(run_id, tags=tags))
    if reason is None and status != "failed":
        run = _retry(lambda: client.get_run(run_id))
        if REASON in run.data.tags:  # left over from an earlier failed attempt of a retried trial
            _retry(lambda: client.delete_tag(run_id, REASON))
    _retry(lambda: client.set_terminated(run_id, status=FINAL_STATUSES[status]))


def mark_failed_if_running(uri: str, run_id: str, reason: str) -> bool:
    """Mark a trial failed (with `reason`) unless it already has an outcome; return whether it was marked.

    For the driver, which learns of a dead trial late: a trial that recorded its own failure (and reason),
    or its completion, keeps it.
    """
    run = _retry(lambda: _client(uri).get_run(run_id))
    if run.data.tags.get(STATUS, "running") in FINAL_STATUSES:
        return False
    set_status(uri, run_id, "failed", reason)
    return True


def close_interrupted_trials(uri: str, parent_run_id: str, arm: str, known: Mapping[str, str | None]) -> list[str]:
    """Close the arm's trial runs left open by a stopped driver that no trial will continue; return their ids.

    Call on resume, before the arm's trials run: nothing writes to them then. `known` maps the trial ids
    of the restored Tune experiment to the outcome Tune recorded for them (`pruned`, `failed`), or to
    None for trials Tune will continue. A run still open (RUNNING, or KILLED by a Ctrl-C):
    - that had recorded its outcome keeps it (the driver stopped between recording it and ending the run);
    - whose trial Tune had finished gets Tune's outcome (the driver stopped before its callback recorded it);
    - whose trial Tune does not know belongs to a trial Tune will never run again (its driver stopped
      before it checkpointed that trial; it proposes a new one instead): failed, with `INTERRUPTED`.
    """
    client = _client(uri)
    closed = []
    for run in _open_trial_runs(client, parent_run_id):
        tags = run.data.tags
        trial = tags.get(TRIAL_ID)
        if tags.get(ROLE) != "trial" or tags.get(ARM) != arm or (trial in known and known[trial] is None):
            continue
        outcome = tags.get(STATUS, "running")
        if outcome in FINAL_STATUSES:
            _retry(lambda run=run, outcome=outcome: client.set_terminated(run.info.run_id, FINAL_STATUSES[outcome]))
        elif trial in known and known[trial] == "pruned":
            set_status(uri, run.info.run_id, "pruned")
        elif trial in known:
            set_status(uri, run.info.run_id, "failed", TUNE_ENDED)
        else:
            set_status(uri, run.info.run_id, "failed", INTERRUPTED)
        closed.append(run.info.run_id)
    return closed


def mark_trials_killed(uri: str, parent_run_id: str) -> list[str]:
    """End the study's trial runs still open as KILLED (the user stopped the study); return their ids.

    Their `clipstudy.status` stays `running`: `--resume` continues them (or closes them, see
    `close_interrupted_trials`), and reopens the runs it continues.
    """
    client = _client(uri)
    killed = []
    for run in _open_trial_runs(client, parent_run_id):
        if run.info.status == "RUNNING":
            _retry(lambda run=run: client.set_terminated(run.info.run_id, status="KILLED"))
            killed.append(run.info.run_id)
    return killed


def _open_trial_runs(client: mlflow.MlflowClient, parent_run_id: str) -> list:
    """The parent's runs whose trial has no outcome yet: still RUNNING (a killed driver), or KILLED (Ctrl-C)."""
    experiment_id = _retry(lambda: client.get_run(parent_run_id)).info.experiment_id
    runs = []
    for status in ("RUNNING", "KILLED"):
        query = f"{_tag_filter(PARENT, parent_run_id)} and attributes.status = '{status}'"
        runs += _search_all(client, experiment_id, query)
    return runs


def _search_all(client: mlflow.MlflowClient, experiment_id: str, query: str) -> list:
    runs, token = [], None
    while True:
        page = _retry(
            lambda token=token: client.search_runs(
                [experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1000, page_token=token
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# ------------------------------------------------------------------------------------------------ reading


def study_experiment_id(uri: str, study_name: str) -> str:
    """The id of a study's experiment; an error listing the known studies if the store has none by that name."""
    return _experiment_id(_client(uri), uri, study_name, create=False)


def set_experiment_tag(uri: str, experiment_id: str, key: str, value: str) -> None:
    """Tag an experiment (e.g. with a view of its runs table for the MLflow UI)."""
    _retry(lambda: _client(uri).set_experiment_tag(experiment_id, key, value))


def study_runs(uri: str, study_name: str) -> pd.DataFrame:
    """The study's invocations (its parent runs), newest first, in the same layout as `trial_runs`."""
    client = _client(uri)
    experiment_id = _experiment_id(client, uri, study_name, create=False)
    runs = _retry(
        lambda: client.search_runs(
            [experiment_id], _tag_filter(ROLE, "study"), order_by=["attributes.start_time DESC"], max_results=1000
        )
    )
    return _runs_frame(runs)


def metric_histories(uri: str, run_ids: list[str], keys: tuple[str, ...]) -> pd.DataFrame:
    """Every logged value of `keys` for the runs: columns run_id, key, step, value (sorted by step)."""
    client = _client(uri)
    rows = [
        (run_id, key, m.step, m.value)
        for run_id in run_ids
        for key in keys
        for m in _retry(lambda run_id=run_id, key=key: client.get_metric_history(run_id, key))
    ]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])
    return frame.sort_values(["run_id", "key", "step"], kind="stable").reset_index(drop=True)


def trial_runs(uri: str, study_name: str, parent_run_id: str | None = None) -> pd.DataFrame:
    """The trial runs of a study, one row per trial, in `mlflow.search_runs`' pandas layout.

    Columns: run_id, experiment_id, status, artifact_uri, start_time, end_time, `metrics.<name>`,
    `params.<name>`, `tags.<name>`. `parent_run_id` restricts to one invocation of the study.
    """
    client = _client(uri)
    experiment_id = _experiment_id(client, uri, study_name, create=False)
    query = _tag_filter(ROLE, "trial")
    if parent_run_id is not None:
        query += f" and {_tag_filter(PARENT, parent_run_id)}"
    frame = _runs_frame(_search_all(client, experiment_id, query))
    if not frame.empty:  # one row per (parent, trial): a lost race could have made a second run
        frame = frame.drop_duplicates([f"tags.{PARENT}", f"tags.{TRIAL_ID}"], keep="first").reset_index(drop=True)
    return frame


def _runs_frame(runs: list) -> pd.DataFrame:
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "artifact_uri": run.info.artifact_uri,
            "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(run.info.end_time, unit="ms", utc=True),
        }
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    rest = sorted(c for c in frame.columns if c not in base)
    return frame[base + rest]


def completed_trial(uri: str, study_name: str, parent_run_id: str, trial_id: str) -> dict[str, float] | None:
    """The recorded metrics of a trial that already completed (with `epoch` = its last epoch), else None.

    A study killed right after a trial finished may not have told Tune so; on resume that trial must
    be reported as it was, not trained again.
    """
    client = _client(uri)
    run = _find_trial_run(client, _experiment_id(client, uri, study_name, create=True), parent_run_id, trial_id)
    if run is None or run.data.tags.get(STATUS) != "completed":
        return None
    return _recorded_result(client, run)


def _recorded_result(client: mlflow.MlflowClient, run: Any) -> dict[str, float]:
    history = _retry(lambda: client.get_metric_history(run.info.run_id, "val/acc"))
    return {**run.data.metrics, "epoch": max((m.step for m in history), default=0)}


def unclaimed_completed_runs(uri: str, parent_run_id: str, arm: str, known: Collection[str]) -> list[str]:
    """The arm's completed trial runs whose trials the restored Tune experiment does not know.

    A trial that started and finished between two snapshots of Tune's experiment state is lost to Tune
    when the driver stops then: on resume Tune proposes a trial in its place. When that trial has the
    same config (always, for an arm without a search), it takes the finished run over (`adopt_completed_run`)
    instead of training again.
    """
    client = _client(uri)
    experiment_id = _retry(lambda: client.get_run(parent_run_id)).info.experiment_id
    query = f"{_tag_filter(PARENT, parent_run_id)} and {_tag_filter(ARM, arm)} and {_tag_filter(STATUS, 'completed')}"
    runs = _search_all(client, experiment_id, query)
    return [run.info.run_id for run in runs if run.data.tags.get(TRIAL_ID) not in known]


def adopt_completed_run(uri: str, run_id: str, trial_id: str, config: TrialConfig) -> dict[str, float] | None:
    """Give the completed run `run_id` to trial `trial_id` if it recorded exactly `config` (and no other trial
    took it over first); return its recorded result, else None. The run keeps its old trial id in `ADOPTED`."""
    client = _client(uri)
    run = _retry(lambda: client.get_run(run_id))
    params = {key: str(value) for key, value in flatten(config.model_dump(mode="json")).items()}
    if ADOPTED in run.data.tags or run.data.params != params:
        return None
    tags = [RunTag(ADOPTED, run.data.tags.get(TRIAL_ID, "")), RunTag(TRIAL_ID, trial_id)]
    _retry(lambda: client.log_batch(run_id, tags=tags))
    return _recorded_result(client, run)
