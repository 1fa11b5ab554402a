"""The tracking store: its URI, reachability checks, the client, SQLite lock retries, experiments, paged searches."""

from __future__ import annotations

import functools
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import mlflow
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from clipstudy.errors import ClipstudyError, did_you_mean
from clipstudy.tracking.schema import DB_FILENAME, ROLE, ROLE_STUDY

__all__ = [
    "check_reachable",
    "client",
    "experiment_id",
    "resolve_tracking_uri",
    "retry",
    "search_all",
    "sqlite_file",
    "study_parent_runs",
    "tag_filter",
]

# SQLite allows one writer at a time; concurrent trials may see "database is locked" past sqlite's own
# 5 s busy timeout. Such writes are retried for up to this long.
_LOCK_RETRY_S = 60.0

T = TypeVar("T")


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
def client(uri: str) -> mlflow.MlflowClient:
    """The (cached) client of a store; explicit run ids with it, never MLflow's global active run."""
    return mlflow.MlflowClient(tracking_uri=uri)


def retry(call: Callable[[], T]) -> T:
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


def experiment_id(client: mlflow.MlflowClient, uri: str, study_name: str, create: bool) -> str:
    """The id of the study's experiment, created if `create`; an error for a deleted one or, without `create`,
    a missing one (listing the known studies)."""
    experiment = retry(lambda: client.get_experiment_by_name(study_name))
    if experiment is None:
        if not create:
            raise _unknown_study(client, uri, study_name)
        try:
            return retry(lambda: client.create_experiment(study_name, artifact_location=_artifact_root(uri)))
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


def tag_filter(key: str, value: str) -> str:
    """A search-runs filter clause matching runs whose tag `key` is `value`."""
    return f"tags.`{key}` = '{value}'"


def search_all(client: mlflow.MlflowClient, experiment_id: str, query: str) -> list[Run]:
    """Every run of the experiment matching `query`, oldest first, all pages of the search."""
    runs, token = [], None
    while True:
        page = retry(
            lambda token=token: client.search_runs(
                [experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1000, page_token=token
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def study_parent_runs(client: mlflow.MlflowClient, experiment_id: str, limit: int) -> list[Run]:
    """The study's parent runs (one per invocation), newest first, at most `limit`."""
    return retry(
        lambda: client.search_runs(
            [experiment_id], tag_filter(ROLE, ROLE_STUDY), order_by=["attributes.start_time DESC"], max_results=limit
        )
    )
