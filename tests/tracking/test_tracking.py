"""The MLflow record: runs, tags, params, metrics and artifacts exactly as DESIGN.md specifies."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from clipstudy import tracking
from clipstudy.config import flatten
from clipstudy.engine import run_trial
from clipstudy.errors import ClipstudyError
from clipstudy.tracking import ARM, METHOD, REASON, ROLE, STATUS, TRIAL_ID

# MLflow 3.17's SQLAlchemy store uses a loader strategy SQLAlchemy deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="session")
def template_store(tmp_path_factory):
    """A migrated, empty SQLite store: creating one costs seconds (MLflow's migrations), copying it does not."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def uri(tmp_path, template_store):
    shutil.copyfile(template_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def client(uri):
    return mlflow.MlflowClient(tracking_uri=uri)


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: demo\narms:\n  lora: {method: lora}\n")
    return path


def _record_trial(uri, parent, arm, trial_id, config):
    """What the runner does for one trial: child run, per-epoch metrics, result, status."""
    result = run_trial(config)
    run_id = tracking.trial_run(uri, "demo", parent, arm, config.method, trial_id, config)
    for row in result.history:
        tracking.log_epoch(uri, run_id, row, row["epoch"])
    tracking.log_result(uri, run_id, result)
    tracking.set_status(uri, run_id, "completed")
    return run_id, result


def test_study_with_two_trials_is_recorded_as_specified(uri, client, study_file, tiny_config, tmp_path):
    parent = tracking.start_study_run(uri, "demo", study_file, resume=False, extra_tags={"clipstudy.note": "x"})
    configs = {"t1": tiny_config("lora", train__epochs=2, lora__r=4), "t2": tiny_config("linear_probe")}
    recorded = {tid: _record_trial(uri, parent, cfg.method, tid, cfg) for tid, cfg in configs.items()}
    tracking.finish_study_run(uri, parent)

    parent_run = client.get_run(parent)
    experiment = client.get_experiment_by_name("demo")
    assert parent_run.info.experiment_id == experiment.experiment_id
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[ROLE] == "study"
    assert parent_run.data.tags["clipstudy.note"] == "x"
    assert "clipstudy.git_commit" in parent_run.data.tags
    study_artifacts = [f.path for f in client.list_artifacts(parent, "study")]
    assert study_artifacts == ["study/study.yaml"]
    # Artifacts of the embedded store live next to the database, not in the working directory.
    assert Path(experiment.artifact_location.removeprefix("file://")) == tmp_path / "mlruns"

    for trial_id, (run_id, result) in recorded.items():
        config = configs[trial_id]
        run = client.get_run(run_id)
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{config.method}/{trial_id}"
        assert tags["mlflow.parentRunId"] == parent
        assert (tags[ROLE], tags[ARM], tags[METHOD], tags[TRIAL_ID], tags[STATUS]) == (
            "trial",
            config.method,
            config.method,
            trial_id,
            "completed",
        )
        assert REASON not in tags
        expected_params = {k: str(v) for k, v in flatten(config.model_dump(mode="json")).items()}
        assert params == expected_params
        assert params["method"] == config.method
        assert params["train.lr"] == str(config.train.lr)
        assert params["lora.targets"] == str(config.lora.targets)

        epochs = config.train.epochs
        for key in ("val/loss", "val/acc"):
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == list(range(epochs + 1))
            by_step = {m.step: m.value for m in history}
            assert by_step == pytest.approx({row["epoch"]: row[key] for row in result.history})
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == list(range(1, epochs + 1))
        assert "epoch" not in metrics
        for key in ("test/acc", "test/acc5", "test/macro_f1", "trainable_params", "total_params"):
            assert metrics[key] == pytest.approx(result.metrics[key])
        assert metrics["trainable_params"] > 0

        artifacts = {f.path: f.file_size for f in client.list_artifacts(run_id)}
        for name in ("per_class.csv", "confusion_matrix.csv", "weights.safetensors", "config.yaml"):
            assert artifacts.get(name, 0) > 0, (name, artifacts)
    assert recorded["t1"][0] != recorded["t2"][0]
    assert client.get_run(recorded["t1"][0]).data.params["lora.r"] == "4"


def test_resume_reuses_the_parent_and_the_trial_runs(uri, client, study_file, tiny_config):
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", study_file, resume=False)
    first = tracking.trial_run(uri, "demo", parent, "lora", "lora", "t1", config)
    assert tracking.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == first
    tracking.finish_study_run(uri, parent, "KILLED")

    resumed = tracking.start_study_run(uri, "demo", study_file, resume=True)
    assert resumed == parent
    assert client.get_run(parent).info.status == "RUNNING"
    assert tracking.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == first
    assert tracking.trial_run(uri, "demo", parent, "lora", "lora", "t2", config) != first
    trial_ids = sorted(tracking.trial_runs(uri, "demo")[f"tags.{TRIAL_ID}"])
    assert trial_ids == ["t1", "t2"]

    fresh = tracking.start_study_run(uri, "demo", None, resume=False)
    assert fresh != parent
    assert tracking.start_study_run(uri, "demo", None, resume=True) == fresh  # the most recent one
    parents = client.search_runs([client.get_experiment_by_name("demo").experiment_id], f"tags.`{ROLE}` = 'study'")
    assert len(parents) == 2


def test_resume_without_a_parent_creates_one(uri, client):
    run_id = tracking.start_study_run(uri, "new-study", None, resume=True)
    assert client.get_run(run_id).data.tags[ROLE] == "study"


def test_a_retried_trial_is_running_again_and_loses_its_old_failure_reason(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    run_id = tracking.trial_run(uri, "demo", parent, "lora", "lora", "t1", config)
    tracking.set_status(uri, run_id, "failed", "worker died")
    assert tracking.trial_run(uri, "demo", parent, "lora", "lora", "t1", config) == run_id
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags[STATUS]) == ("RUNNING", "running")
    tracking.set_status(uri, run_id, "completed")
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags[STATUS]) == ("FINISHED", "completed")
    assert REASON not in run.data.tags


@pytest.mark.parametrize(
    ("status", "reason", "mlflow_status"),
    [("completed", None, "FINISHED"), ("pruned", None, "FINISHED"), ("failed", "non-finite loss at epoch 3", "FAILED")],
)
def test_set_status(uri, client, tiny_config, status, reason, mlflow_status):
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    run_id = tracking.trial_run(uri, "demo", parent, "arm", "lora", "t1", tiny_config("lora"))
    assert client.get_run(run_id).data.tags[STATUS] == "running"
    tracking.set_status(uri, run_id, status, reason)
    run = client.get_run(run_id)
    assert run.info.status == mlflow_status
    assert run.data.tags[STATUS] == status
    assert run.data.tags.get(REASON) == reason
    assert run.info.end_time is not None


def test_mark_failed_if_running_keeps_a_recorded_outcome(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    dead, failed, done = (tracking.trial_run(uri, "demo", parent, "arm", "lora", t, config) for t in "abc")
    tracking.set_status(uri, failed, "failed", "non-finite loss")
    tracking.set_status(uri, done, "completed")
    assert tracking.mark_failed_if_running(uri, dead, "trial errored: worker died")
    assert not tracking.mark_failed_if_running(uri, failed, "trial errored")
    assert not tracking.mark_failed_if_running(uri, done, "trial errored")
    outcomes = {r: (client.get_run(r).info.status, client.get_run(r).data.tags) for r in (dead, failed, done)}
    assert outcomes[dead][0] == "FAILED"
    assert outcomes[dead][1][REASON] == "trial errored: worker died"
    assert outcomes[failed][1][REASON] == "non-finite loss"
    assert (outcomes[done][0], outcomes[done][1][STATUS]) == ("FINISHED", "completed")


def test_close_interrupted_trials_closes_only_the_arms_orphans(uri, client, tiny_config):
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    runs = {tid: tracking.trial_run(uri, "demo", parent, "lora", "lora", tid, config) for tid in ("done", "resumed")}
    more = ("orphan", "pruned", "tune_pruned", "tune_errored")
    runs |= {tid: tracking.trial_run(uri, "demo", parent, "lora", "lora", tid, config) for tid in more}
    runs["other_arm"] = tracking.trial_run(uri, "demo", parent, "probe", "linear_probe", "x", config)
    tracking.log_epoch(uri, runs["done"], {"val/acc": 0.75}, 3)
    tracking.set_status(uri, runs["done"], "completed")
    tracking.log_epoch(uri, runs["orphan"], {"val/acc": 0.5}, 1)
    client.set_tag(runs["pruned"], STATUS, "pruned")  # outcome recorded, run not yet ended: the driver died
    tracking.finish_study_run(uri, parent, "KILLED")
    other_parent = tracking.start_study_run(uri, "demo", None, resume=False)
    elsewhere = tracking.trial_run(uri, "demo", other_parent, "lora", "lora", "orphan", config)
    resumed_parent = tracking.start_study_run(uri, "demo", None, resume=True)
    assert resumed_parent == other_parent

    # Tune's snapshot: "done" finished, "resumed" continues, and the driver died before its callbacks recorded
    # that Tune had stopped "tune_pruned" (ASHA) and seen "tune_errored" fail
    known = {"done": "completed", "resumed": None, "tune_pruned": "pruned", "tune_errored": "failed"}
    closed = tracking.close_interrupted_trials(uri, parent, "lora", known)

    assert sorted(closed) == sorted(runs[tid] for tid in ("orphan", "pruned", "tune_pruned", "tune_errored"))
    state = {tid: client.get_run(run_id) for tid, run_id in runs.items()}
    orphan = state["orphan"]
    assert (orphan.info.status, orphan.data.tags[STATUS]) == ("FAILED", "failed")
    assert orphan.data.tags[REASON] == tracking.INTERRUPTED
    assert orphan.info.end_time is not None
    assert orphan.data.metrics == {"val/acc": 0.5}  # what it had logged stays
    assert (state["pruned"].info.status, state["pruned"].data.tags[STATUS]) == ("FINISHED", "pruned")
    assert REASON not in state["pruned"].data.tags
    assert (state["tune_pruned"].info.status, state["tune_pruned"].data.tags[STATUS]) == ("FINISHED", "pruned")
    errored = state["tune_errored"]
    assert (errored.info.status, errored.data.tags[STATUS]) == ("FAILED", "failed")
    assert errored.data.tags[REASON] == tracking.TUNE_ENDED
    assert (state["done"].info.status, state["done"].data.tags[STATUS]) == ("FINISHED", "completed")
    assert state["done"].data.metrics == {"val/acc": 0.75}
    for untouched in (state["resumed"], state["other_arm"], client.get_run(elsewhere)):
        assert (untouched.info.status, untouched.data.tags[STATUS]) == ("RUNNING", "running")
    assert tracking.close_interrupted_trials(uri, parent, "lora", known) == []


def test_a_completed_run_tune_lost_is_adopted_once_by_a_trial_with_its_config(uri, client, tiny_config):
    config, other = tiny_config("lora"), tiny_config("lora", train__lr=0.5)
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    lost = tracking.trial_run(uri, "demo", parent, "lora", "lora", "lost", config)
    tracking.log_epoch(uri, lost, {"val/acc": 0.5}, 0)
    tracking.log_epoch(uri, lost, {"val/acc": 0.75}, 2)
    tracking.set_status(uri, lost, "completed")
    known = tracking.trial_run(uri, "demo", parent, "lora", "lora", "known", config)
    tracking.set_status(uri, known, "completed")
    pruned = tracking.trial_run(uri, "demo", parent, "lora", "lora", "pruned", config)
    tracking.set_status(uri, pruned, "pruned")

    assert tracking.unclaimed_completed_runs(uri, parent, "lora", {"known"}) == [lost]
    assert tracking.unclaimed_completed_runs(uri, parent, "probe", set()) == []
    assert tracking.adopt_completed_run(uri, lost, "new1", other) is None  # another config: trains anew
    assert client.get_run(lost).data.tags[TRIAL_ID] == "lost"

    result = tracking.adopt_completed_run(uri, lost, "new2", config)

    assert result == {"val/acc": 0.75, "epoch": 2}
    tags = client.get_run(lost).data.tags
    assert (tags[TRIAL_ID], tags[tracking.ADOPTED], tags[STATUS]) == ("new2", "lost", "completed")
    assert tracking.completed_trial(uri, "demo", parent, "new2") == result
    assert tracking.adopt_completed_run(uri, lost, "new3", config) is None  # taken already


def test_set_status_rejects_unknown_statuses(uri, tiny_config):
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    run_id = tracking.trial_run(uri, "demo", parent, "arm", "lora", "t1", tiny_config("lora"))
    for bad in ("running", "FINISHED", "done"):
        with pytest.raises(ValueError, match="completed, pruned, failed"):
            tracking.set_status(uri, run_id, bad)


def test_log_epoch_skips_epoch_and_non_numeric_values(uri, client):
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    tracking.log_epoch(uri, parent, {"epoch": 3, "train/loss": 0.5, "lr": 1e-3, "note": "x", "ok": True}, 3)
    metrics = client.get_run(parent).data.metrics
    assert metrics == {"train/loss": 0.5, "lr": 1e-3}
    assert [m.step for m in client.get_metric_history(parent, "train/loss")] == [3]


@pytest.mark.parametrize(
    ("per_worker", "tag"),
    [([["0"]], "0"), ([["0"], ["0"]], "0;0"), ([["2", "3"], ["0", "1"]], "2,3;0,1"), ([[]], None)],
)
def test_log_gpu_ids_tags_each_workers_gpus_in_rank_order(uri, client, per_worker, tag):
    run_id = tracking.start_study_run(uri, "demo", None, resume=False)
    tracking.log_gpu_ids(uri, run_id, per_worker)
    assert client.get_run(run_id).data.tags.get(tracking.GPU_IDS) == tag


def test_log_runtime_tags_device_and_precision(uri, client):
    run_id = tracking.start_study_run(uri, "demo", None, resume=False)
    tracking.log_runtime(uri, run_id, {"device": "cuda (NVIDIA H100 80GB HBM3)", "precision": "bf16"})
    tags = client.get_run(run_id).data.tags
    assert tags["clipstudy.runtime.device"] == "cuda (NVIDIA H100 80GB HBM3)"
    assert tags["clipstudy.runtime.precision"] == "bf16"


def test_resolve_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.resolve_tracking_uri("http://study:5000", tmp_path) == "http://study:5000"
    # A relative SQLite path is anchored at the working directory: Ray workers run elsewhere.
    assert tracking.resolve_tracking_uri("sqlite:///runs/x.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/runs/x.db"
    assert tracking.resolve_tracking_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    home = Path("~").expanduser()
    assert tracking.resolve_tracking_uri("sqlite:///~/x.db?timeout=30", tmp_path) == f"sqlite:///{home}/x.db?timeout=30"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.resolve_tracking_uri("http://study:5000", tmp_path) == "http://env:5000"
    assert tracking.resolve_tracking_uri(None, tmp_path) == "http://env:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert tracking.resolve_tracking_uri("http://study:5000", tmp_path) == "http://study:5000"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_check_reachable_fails_fast_on_a_dead_server():
    uri = f"http://127.0.0.1:{_unused_port()}"
    start = time.monotonic()
    with pytest.raises(ClipstudyError) as info:
        tracking.check_reachable(uri, timeout=2.0)
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
    tracking.check_reachable(uri)
    tracking.check_reachable(uri + "/")
    handler.healthy = False
    with pytest.raises(ClipstudyError, match="does not answer like an MLflow tracking server"):
        tracking.check_reachable(uri)


def test_check_reachable_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking.check_reachable("databricks")  # not a folder: nothing to check, nothing created
    assert not (tmp_path / "databricks").exists()
    tracking.check_reachable(f"sqlite:///{tmp_path}/new/folder/mlflow.db")
    assert (tmp_path / "new" / "folder").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ClipstudyError, match="cannot create folder"):
        tracking.check_reachable(f"sqlite:///{blocker}/sub/mlflow.db")


def test_trial_runs_one_row_per_trial_without_the_parent(uri, tiny_config):
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    runs = {tid: tracking.trial_run(uri, "demo", parent, "arm", "lora", tid, config) for tid in ("a", "b", "c")}
    tracking.trial_run(uri, "demo", parent, "arm", "lora", "a", config)  # resumed: not a new row
    tracking.log_epoch(uri, runs["a"], {"val/acc": 0.5}, 0)
    tracking.set_status(uri, runs["b"], "pruned")

    frame = tracking.trial_runs(uri, "demo")
    assert len(frame) == 3
    assert set(frame["run_id"]) == set(runs.values())
    assert parent not in set(frame["run_id"])
    assert set(frame[f"tags.{ROLE}"]) == {"trial"}
    assert set(frame[f"tags.{TRIAL_ID}"]) == {"a", "b", "c"}
    assert {"status", "start_time", "params.lora.r", "params.train.lr", "metrics.val/acc"} <= set(frame.columns)
    assert frame.set_index(f"tags.{TRIAL_ID}").loc["b", f"tags.{STATUS}"] == "pruned"
    assert len(tracking.trial_runs(uri, "demo", parent_run_id=parent)) == 3
    assert len(tracking.trial_runs(uri, "demo", parent_run_id="0" * 32)) == 0


def test_trial_runs_of_a_study_without_trials_is_empty(uri):
    tracking.start_study_run(uri, "empty", None, resume=False)
    frame = tracking.trial_runs(uri, "empty")
    assert frame.empty
    assert "run_id" in frame.columns


def test_trial_runs_unknown_study_lists_the_known_ones(uri):
    tracking.start_study_run(uri, "cifar-lora", None, resume=False)
    tracking.start_study_run(uri, "digits-probe", None, resume=False)
    with pytest.raises(ClipstudyError) as info:
        tracking.trial_runs(uri, "cifar-lorra")
    message = str(info.value)
    assert "cifar-lorra" in message
    assert "did you mean 'cifar-lora'" in message
    assert "cifar-lora, digits-probe" in message
    assert "Default" not in message


def test_provenance_tags():
    tags = tracking.provenance_tags()
    assert tags["clipstudy.git_dirty"] in {"true", "false", "unknown"}
    commit = tags["clipstudy.git_commit"]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)
    packages = ("torch", "open_clip_torch", "peft", "ray", "optuna", "mlflow", "clipstudy")
    for package in packages:
        assert tags[f"clipstudy.version.{package}"]
    assert tags["clipstudy.version.mlflow"] == mlflow.__version__
    assert all(isinstance(v, str) for v in tags.values())


_WORKER = """
import sys
from clipstudy import tracking
from clipstudy.config import TrialConfig

uri, parent, config = sys.argv[1], sys.argv[2], TrialConfig.model_validate_json(sys.argv[3])
for trial_id in sys.argv[4:]:
    run_id = tracking.trial_run(uri, "demo", parent, "arm", config.method, trial_id, config)
    for epoch in range(5):
        tracking.log_epoch(uri, run_id, {"val/acc": epoch / 5, "train/loss": 1.0 / (epoch + 1)}, epoch)
    tracking.set_status(uri, run_id, "completed")
"""


@pytest.mark.slow
def test_trials_recorded_from_several_processes_at_once(uri, client, tiny_config):
    """Ray workers write their trials concurrently into one SQLite store: no error, no lost or duplicate run."""
    config = tiny_config("lora")
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    groups = [["t0", "t1", "t2"], ["t3", "t4", "t5"]]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, uri, parent, config.model_dump_json(), *group])
        for group in groups
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    frame = tracking.trial_runs(uri, "demo")
    assert sorted(frame[f"tags.{TRIAL_ID}"]) == [f"t{i}" for i in range(6)]
    assert set(frame[f"tags.{STATUS}"]) == {"completed"}
    assert set(frame["status"]) == {"FINISHED"}
    for run_id in frame["run_id"]:
        assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == list(range(5))


def test_base_to_new_and_retention_metrics_are_recorded(uri, client, tiny_config):
    """The protocol metrics are part of the trial's final metrics, so they reach MLflow with the rest."""
    config = tiny_config("zero_shot", data__classes="base", eval__retention=["digits"], eval__retention_per_class=4)
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    run_id, result = _record_trial(uri, parent, "zs", "t1", config)
    recorded = client.get_run(run_id).data.metrics
    keys = ["test/base_acc", "test/new_acc", "test/hm"]
    keys += [f"retention/digits/{name}" for name in ("acc", "zs_acc", "delta")]
    for key in keys:
        assert recorded[key] == pytest.approx(result.metrics[key]), key
    assert recorded["retention/digits/delta"] == 0.0  # zero-shot changes nothing
    params = client.get_run(run_id).data.params
    assert params["data.classes"] == "base" and params["eval.retention"] == "['digits']"


def test_the_wise_ft_alpha_curve_is_recorded_with_its_steps(uri, client, tiny_config):
    config = tiny_config("full_ft", head__kind="text", wise__enabled=True, wise__alphas=[0.0, 0.25, 1.0])
    parent = tracking.start_study_run(uri, "demo", None, resume=False)
    run_id, result = _record_trial(uri, parent, "wise", "t1", config)
    for key in ("wise/val_acc", "wise/val_loss", "wise/test_acc"):
        history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        assert history == pytest.approx(dict(result.curves[key])), key
        assert sorted(history) == [0, 25, 100]
    recorded = client.get_run(run_id).data.metrics
    for key in ("wise/best_alpha", "wise/val_acc_at_best", "wise/test_acc_at_best"):
        assert recorded[key] == pytest.approx(result.metrics[key]), key
    assert recorded["wise/best_alpha"] in (0.0, 0.25, 1.0)
