"""The tracking store: URI resolution, reachability checks, concurrent writers on one SQLite store."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clipstudy.errors import ClipstudyError
from clipstudy.tracking import read, runs, store
from clipstudy.tracking.schema import STATUS_COLUMN, TRIAL_ID_COLUMN

# MLflow 3.17's SQLAlchemy store uses a loader strategy SQLAlchemy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def test_resolve_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store.resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    assert store.resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert store.resolve_tracking_uri("http://study:5000", tmp_path) == "http://study:5000"
    # A relative SQLite path is anchored at the working directory: Ray workers run elsewhere.
    assert store.resolve_tracking_uri("sqlite:///runs/x.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/runs/x.db"
    assert store.resolve_tracking_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    home = Path("~").expanduser()
    assert store.resolve_tracking_uri("sqlite:///~/x.db?timeout=30", tmp_path) == f"sqlite:///{home}/x.db?timeout=30"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert store.resolve_tracking_uri("http://study:5000", tmp_path) == "http://env:5000"
    assert store.resolve_tracking_uri(None, tmp_path) == "http://env:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert store.resolve_tracking_uri("http://study:5000", tmp_path) == "http://study:5000"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_check_reachable_fails_fast_on_a_dead_server():
    uri = f"http://127.0.0.1:{_unused_port()}"
    start = time.monotonic()
    with pytest.raises(ClipstudyError) as info:
        store.check_reachable(uri, timeout=2.0)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert uri in message
    assert "MLFLOW_TRACKING_URI" in message


@pytest.fixture
def http_server():
    """A local HTTP server answering 200 on /health when `healthy`, 404 everywhere otherwise."""

    class Handler(http.server.BaseHTTPRequestHandler):
        healthy = True

        def do_GET(self):
            code = 200 if self.healthy and self.path == "/health" else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Handler
    server.shutdown()
    server.server_close()


def test_check_reachable_accepts_a_healthy_server_and_rejects_a_foreign_one(http_server):
    uri, handler = http_server
    store.check_reachable(uri)
    store.check_reachable(uri + "/")
    handler.healthy = False
    with pytest.raises(ClipstudyError, match="does not answer like an MLflow tracking server"):
        store.check_reachable(uri)


def test_check_reachable_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store.check_reachable("databricks")  # not a folder: nothing to check, nothing created
    assert not (tmp_path / "databricks").exists()
    store.check_reachable(f"sqlite:///{tmp_path}/new/folder/mlflow.db")
    assert (tmp_path / "new" / "folder").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ClipstudyError, match="cannot create folder"):
        store.check_reachable(f"sqlite:///{blocker}/sub/mlflow.db")


_WORKER = """
import sys
from clipstudy.config import TrialConfig
from clipstudy.tracking import runs

uri, parent, config = sys.argv[1], sys.argv[2], TrialConfig.model_validate_json(sys.argv[3])
for trial_id in sys.argv[4:]:
    run_id = runs.trial_run(uri, "demo", parent, "arm", config.method, trial_id, config)
    for epoch in range(5):
        runs.log_epoch(uri, run_id, {"val/acc": epoch / 5, "train/loss": 1.0 / (epoch + 1)}, epoch)
    runs.set_status(uri, run_id, "completed")
"""


@pytest.mark.slow
def test_trials_recorded_from_several_processes_at_once(uri, client, tiny_config):
    """Ray workers write their trials concurrently into one SQLite store: no error, no lost or duplicate run."""
    config = tiny_config("lora")
    parent = runs.start_study_run(uri, "demo", None, resume=False)
    groups = [["t0", "t1", "t2"], ["t3", "t4", "t5"]]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, uri, parent, config.model_dump_json(), *group])
        for group in groups
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    frame = read.trial_runs(uri, "demo")
    assert sorted(frame[TRIAL_ID_COLUMN]) == [f"t{i}" for i in range(6)]
    assert set(frame[STATUS_COLUMN]) == {"completed"}
    assert set(frame["status"]) == {"FINISHED"}
    for run_id in frame["run_id"]:
        assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == list(range(5))
