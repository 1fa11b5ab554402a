"""`clipstudy ui`: the MLflow UI on a study's tracking store, opened on its runs table with the key columns.

The runs table nests each trial (child run) under its study run (the parent) while it is sorted by creation
time, MLflow's default. Its columns are view state that the UI keeps in the browser, with one exception: a
page URL with `viewStateShareKey=<key>` loads a *shared view*, the JSON state in the experiment tag
`mlflow.sharedViewState.<key>`. `clipstudy ui STUDY` writes such a view with the key columns, so the URL it
prints opens on them. Which rows are expanded is never part of a shared view (MLflow keeps that per browser):
a study run lists its trials once expanded (the + by its name).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstudy.analysis.load import resolve_study
from clipstudy.errors import ClipstudyError, ConfigError
from clipstudy.tracking import read, runs, store
from clipstudy.tracking.schema import ARM, METHOD, STATUS

SHARED_VIEW_TAG = "mlflow.sharedViewState."
"""Prefix of the experiment tags the MLflow UI reads shared runs-table views from."""
VIEW_KEY = "clipstudy"
KEY_COLUMNS = (
    "metrics.`val/acc`",
    "metrics.`best_val/acc`",
    "metrics.`test/acc`",
    f"tags.`{ARM}`",
    f"tags.`{STATUS}`",
    f"tags.`{METHOD}`",
    "metrics.`trainable_params`",
    "attributes.`Duration`",
)
"""Runs-table columns in display order, named as the MLflow UI names them: <metrics|params|tags|attributes>.`<key>`."""
TAG_COLUMN_WIDTH = 130  # px: wide enough for the `clipstudy.*` headers
START_TIMEOUT_S = 180.0
_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""Defaults for the server: no job runner (it serves GenAI judges, which a study has none of)."""


@dataclass(frozen=True)
class UiTarget:
    """What `clipstudy ui` shows: a tracking store and, when a study was named, that study's experiment."""

    tracking_uri: str
    study: str | None = None
    experiment_id: str | None = None


def resolve_target(ref: str | None, workdir: str | Path = ".") -> UiTarget:
    """The store of a study file or study name (or of `workdir`), checked before any server starts."""
    name, uri = resolve_study(ref, workdir) if ref else (None, store.resolve_tracking_uri(None, workdir))
    database = store.sqlite_file(uri)
    if database is not None and not database.exists():
        raise ConfigError(
            f"no MLflow store at {database}: run a study there first (`clipstudy run`), or point --workdir at the "
            f"folder that holds {database.name}"
        )
    store.check_reachable(uri)
    if name is None:
        return UiTarget(uri)
    return UiTarget(uri, name, read.study_experiment_id(uri, name))


def runs_view() -> dict[str, Any]:
    """The shared runs-table view `clipstudy ui` opens on: the key columns, first; rows in MLflow's default order."""
    return {
        "selectedColumns": list(KEY_COLUMNS),
        "columnOrder": list(KEY_COLUMNS),
        "columnWidths": {column: TAG_COLUMN_WIDTH for column in KEY_COLUMNS if column.startswith("tags.")},
    }


def study_url(address: str, experiment_id: str) -> str:
    """The study's runs table in the MLflow UI at `address`, in the view `share_runs_view` wrote."""
    return f"{address}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def share_runs_view(target: UiTarget) -> None:
    """Write (or refresh) the key-column view on the study's experiment."""
    if target.experiment_id is not None:
        tag = SHARED_VIEW_TAG + VIEW_KEY
        runs.set_experiment_tag(target.tracking_uri, target.experiment_id, tag, json.dumps(runs_view()))


@dataclass
class UiServer:
    """A running MLflow UI; `process` is None when the tracking store is a server, which is its own UI."""

    address: str
    study_url: str | None
    process: subprocess.Popen | None = None

    def wait(self) -> int:
        """Block until the server stops; its exit code."""
        return 0 if self.process is None else self.process.wait()

    def stop(self) -> None:
        """Stop the server and every process it started (they share its process group)."""
        if self.process is None:
            return
        _signal_group(self.process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        _signal_group(self.process, signal.SIGKILL)  # what is left of the group, e.g. a worker still stopping
        self.process.wait()

    def __enter__(self) -> UiServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_ui(
    target: UiTarget,
    host: str = "127.0.0.1",
    port: int = 5000,
    log: Path | None = None,
    timeout: float = START_TIMEOUT_S,
) -> UiServer:
    """Serve the MLflow UI on the target's store (`mlflow server`) and return once it answers.

    The server's output goes to `log` when given, else to this process's terminal (without the access log).
    For a tracking server there is nothing to start: its address is returned.
    """
    if target.tracking_uri.startswith(("http://", "https://")):
        address = target.tracking_uri.rstrip("/")
        share_runs_view(target)
        return UiServer(address, _study_url(address, target))
    _check_port_free(host, port)
    share_runs_view(target)
    address = f"http://{_browser_host(host)}:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", target.tracking_uri,
        "--host", host,
        "--port", str(port),
        "--workers", "1",
        "--uvicorn-opts=--no-access-log",
    ]  # fmt: skip
    output = open(log, "wb") if log is not None else None  # noqa: SIM115 (the child process writes to it)
    try:
        process = subprocess.Popen(
            command,
            env={**_SERVER_ENV, **os.environ},
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )
    finally:
        if output is not None:
            output.close()
    server = UiServer(address, _study_url(address, target), process)
    try:
        _wait_until_answering(server, timeout, log)
    except BaseException:
        server.stop()
        raise
    return server


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What stops `clipstudy ui` besides Ctrl-C: a plain `kill`, a closed terminal or SSH session."""


@contextlib.contextmanager
def interrupted_by_stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does, so the same path (`UiServer`'s
    `with`, `start_ui`'s cleanup) stops the MLflow server, which runs in a session of its own and so gets
    neither signal from the terminal. Only the main thread can set handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        for other in STOP_SIGNALS:  # once: a second `kill` must not cut the server's shutdown short
            signal.signal(other, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _study_url(address: str, target: UiTarget) -> str | None:
    return study_url(address, target.experiment_id) if target.experiment_id is not None else None


def _browser_host(host: str) -> str:
    """The host a browser on this machine reaches a server bound to `host` at."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot serve the MLflow UI on {host}:{port} ({error.strerror}); choose another port with --port "
                "or another interface with --host"
            ) from None


def _wait_until_answering(server: UiServer, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise ClipstudyError(f"the MLflow UI server stopped with exit code {code} before answering{_tail(log)}")
        if _answers(f"{server.address}/health"):
            return
        time.sleep(0.25)
    raise ClipstudyError(f"the MLflow UI server did not answer at {server.address} within {timeout:.0f} s{_tail(log)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None:
        return " (its output is above)"
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; the end of its log ({log}):\n" + "\n".join(text)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
