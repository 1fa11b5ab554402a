"""A study submitted with `ray job submit` to a real two-node Ray cluster on loopback (CPU only, ~3 min alone).

The study is submitted twice to the one cluster, as a command (`clipstudy run study.yaml`) and as a Python
script that runs it through the API (`python study.py`, written as studies/quickstart.py is), each job with
its own MLflow store and Tune storage. Both must succeed and leave the same record: one FINISHED parent run
holding the same study, the same number of trial runs with the same statuses, and, the TPE sampler being
seeded (its first trials are random startup trials drawn in order from the seed, whatever runs when), the
same learning rates.

Two `ray start --block` nodes (a head and a worker, one CPU each) run on this machine, each with its
own temp dir, free ports and CPU core, behind token auth with a throwaway token (RAY_AUTH_TOKEN:
~/.ray is not touched). Both are started in their own process groups and stopped by signal, never
with `ray stop`, which would stop every Ray process on the machine.

Which node ran a trial: each Tune result records the pid of the trial's actor, and Ray's State API
(`ray list actors`) gives that actor's node id. Both nodes have the same IP, hence ids, not IPs.

Why each node gets a trial of the command's job (see tests/study/studies/two_node.yaml): Tune reuses actors, and
a pending trial takes a freed-up actor rather than wait for its own to start. So both trials start together
(`max_concurrent: 2`), each node on its own core (so neither actor's start-up is slowed by the other
node's training: they come up within seconds of each other), and a trial lasts longer (~20 s) than that gap.
The script's job is only checked to run its trials on known nodes: its placement is not the point of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from clipstudy.tracking.schema import (
    METHOD_COLUMN,
    PARENT_COLUMN,
    ROLE,
    STATUS_COLUMN,
    STUDY_ARTIFACT_DIR,
    TRIAL_ID_COLUMN,
)
from tests.study.conftest import RAY_STARTUP_TIMEOUT

pytest.importorskip("ray")
mlflow = pytest.importorskip("mlflow")
psutil = pytest.importorskip("psutil")

BIN = Path(sys.executable).parent
RAY = BIN / "ray"
CLIPSTUDY = BIN / "clipstudy"
STUDY = Path(__file__).parent / "studies" / "two_node.yaml"
NODE_START_TIMEOUT_S = 120
NODE_START_ATTEMPTS = 3
JOB_TIMEOUT_S = 300


def free_ports(count: int) -> list[int]:
    """Distinct ports the OS reports free (all held open together, so no duplicates)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Cluster:
    folder: Path  # short (Unix socket paths are limited to ~107 characters)
    env: dict[str, str]
    gcs_address: str = ""
    dashboard: str = ""
    nodes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(RAY), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def ray_ok(self, *args: str, timeout: float = 120) -> str:
        done = self.ray(*args, timeout=timeout)
        assert done.returncode == 0, f"ray {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start_node(self, name: str, *args: str) -> None:
        """`ray start --block` in its own process group, pinned to a core of its own where there are enough
        (its processes inherit the pinning): like separate machines, one node's busy trial does not slow
        the other node's trial actor while it starts."""
        cores = sorted(os.sched_getaffinity(0))
        core = cores[len(self.nodes)] if len(cores) > len(self.nodes) else None
        log = self.folder / f"{name}.log"
        self.logs.append(log)
        with log.open("w") as out:
            self.nodes.append(
                subprocess.Popen(
                    [
                        str(RAY),
                        "start",
                        "--block",
                        "--num-cpus=1",
                        "--node-ip-address=127.0.0.1",
                        f"--temp-dir={self.folder / name}",
                        "--object-store-memory=100000000",
                        "--disable-usage-stats",
                        *args,
                    ],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=None if core is None else lambda: os.sched_setaffinity(0, {core}),
                )
            )

    def alive_nodes(self) -> list[dict]:
        done = self.ray("list", "nodes", "--address", self.dashboard, "--format", "json", "--detail", timeout=60)
        if done.returncode != 0:
            return []
        try:
            return [n for n in json.loads(done.stdout) if n.get("state") == "ALIVE"]
        except json.JSONDecodeError:
            return []

    def wait_for_nodes(self, count: int) -> list[dict]:
        """Wait until the last node started says it is up in its log (a cheap file read), then until the cluster
        lists `count` live nodes: each `ray list nodes` is a new CLI process that takes seconds of CPU, which
        would slow the very nodes it waits for."""
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        node, log = self.nodes[-1], self.logs[-1]
        while time.monotonic() < deadline and "Ray runtime started." not in log.read_text():
            assert node.poll() is None, f"`ray start` exited ({node.returncode}):\n{self.tail_logs()}"
            time.sleep(0.5)
        while time.monotonic() < deadline:
            for node in self.nodes:
                assert node.poll() is None, f"`ray start` exited ({node.returncode}):\n{self.tail_logs()}"
            nodes = self.alive_nodes()
            if len(nodes) >= count:
                return nodes
            time.sleep(2)
        raise AssertionError(f"the cluster did not reach {count} nodes in {NODE_START_TIMEOUT_S}s:\n{self.tail_logs()}")

    def start_worker_node(self) -> None:
        """The second node, started again (with new ports) when Ray timed it out during start-up."""
        for attempt in range(NODE_START_ATTEMPTS):
            self.start_node(f"worker{attempt}", f"--address={self.gcs_address}", *_node_ports(free_ports(6)))
            try:
                self.wait_for_nodes(2)
                return
            except AssertionError:
                node, log = self.nodes[-1], self.logs[-1]
                if node.poll() is None or RAY_STARTUP_TIMEOUT not in log.read_text():
                    raise
                print(f"worker node timed out during Ray's start-up (attempt {attempt + 1}); starting it again")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.nodes.pop().pid, signal.SIGKILL)  # what it left of itself
        raise AssertionError(f"the worker node timed out during start-up {NODE_START_ATTEMPTS} times")

    def tail_logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:]) for log in self.logs)

    def stop(self) -> None:
        """SIGTERM each `ray start --block` (it stops its node), then SIGKILL its process group and anything
        left that runs from this cluster's temp dir. Worker node first, then the head."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.pid, signal.SIGKILL)  # start_new_session: the group id is the pid
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=10)
        marker = str(self.folder)
        for process in psutil.process_iter(["pid", "cmdline"]):
            if any(marker in part for part in process.info["cmdline"] or ()):
                with contextlib.suppress(psutil.Error):
                    process.kill()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPU cores: one per node")
    folder = Path(tempfile.mkdtemp(prefix="cs2n-", dir="/tmp"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
        "HOME": str(folder / "home"),  # nothing of ours lands in the real ~/.ray or ~/.cache
        "RAY_TMPDIR": str(folder),
        "RAY_USAGE_STATS_ENABLED": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
    }
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    (folder / "home").mkdir()
    cluster = Cluster(folder, env)
    try:
        head = free_ports(9)
        cluster.gcs_address = f"127.0.0.1:{head[0]}"
        cluster.dashboard = f"http://127.0.0.1:{head[1]}"
        cluster.start_node(
            "head",
            "--head",
            f"--port={head[0]}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={head[1]}",
            f"--ray-client-server-port={head[2]}",
            *_node_ports(head[3:]),
        )
        cluster.wait_for_nodes(1)
        cluster.start_worker_node()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _node_ports(ports: list[int]) -> list[str]:
    """The per-node ports that would collide between two nodes on one host if left at their defaults."""
    names = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    )
    return [f"--{name}={port}" for name, port in zip(names, ports, strict=True)]


def job_status(output: str, job_id: str) -> str | None:
    """The status in `ray job status` output: it words terminal states differently from the others."""
    job = re.escape(job_id)
    for pattern, status in (
        (rf"Job '{job}' succeeded", "SUCCEEDED"),
        (rf"Job '{job}' failed", "FAILED"),
        (rf"Job '{job}' was stopped", "STOPPED"),
    ):
        if re.search(pattern, output):
            return status
    found = re.search(rf"Status for job '{job}': (\w+)", output)
    return found.group(1) if found else None


def wait_for_job(cluster: Cluster, job_id: str) -> tuple[str, str]:
    """(status, logs) once the job ends: one `ray job logs --follow` (polling `ray job status` would start a
    CPU-heavy CLI process every few seconds on a machine the trials need), stopped after JOB_TIMEOUT_S."""
    try:
        follow = cluster.ray("job", "logs", "--address", cluster.dashboard, "--follow", job_id, timeout=JOB_TIMEOUT_S)
        logs, timed_out = follow.stdout + follow.stderr, False
    except subprocess.TimeoutExpired as error:
        logs, timed_out = _text(error.stdout) + _text(error.stderr), True
        cluster.ray("job", "stop", "--address", cluster.dashboard, "--no-wait", job_id, timeout=60)
    done = cluster.ray("job", "status", "--address", cluster.dashboard, job_id, timeout=60)
    status = job_status(done.stdout + done.stderr, job_id) or "UNKNOWN"
    return (f"{status} after {JOB_TIMEOUT_S}s (stopped)" if timed_out else status), logs


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


# The Python-script form of the study, written as studies/quickstart.py is: it loads the study file next to it.
SCRIPT = '''\
"""The study through the Python API, as studies/quickstart.py runs the quickstart."""

import os
from pathlib import Path

from clipstudy.api import RunOptions, best_trials, load_study, run_study

study = load_study(Path(__file__).with_name("study.yaml"))
trials = run_study(study, RunOptions(local="RAY_ADDRESS" not in os.environ))
print(best_trials(trials)[["tags.clipstudy.method", "selection", "metrics.test/acc", "metrics.trainable_params"]])
'''


@dataclass
class JobRecord:
    """What one submitted study job left: its logs, its MLflow record and where its trials ran."""

    uri: str
    storage: str
    logs: str
    parent: mlflow.entities.Run
    trials: object  # pandas DataFrame, one row per trial run (read.trial_runs)
    attached_study: dict  # the study file attached to the parent run, loaded and dumped
    trial_nodes: dict[str, str | None]  # Tune trial id -> node id
    placement: str  # for failure messages


def trial_results(experiment_folder: Path) -> dict[str, dict]:
    """Tune trial id -> its last result (`pid`: the trial actor's process, `time_total_s`, `date`, ...)."""
    results = {}
    for result_file in experiment_folder.glob("*/result.json"):
        lines = result_file.read_text().splitlines()
        if lines:
            last = json.loads(lines[-1])
            results[last["trial_id"]] = last
    return results


def run_job(cluster: Cluster, folder: Path, study: dict, entrypoint: list[str], files: dict[str, str]) -> JobRecord:
    """Submit a job whose working dir holds the study (as `study.yaml`, with its own storage under `folder`)
    and `files`, with its own MLflow store under `folder`; wait until it succeeds and read what it left."""
    from clipstudy.studyfile import load_study
    from clipstudy.tracking import read

    study = {**study, "storage": str(folder / "runs")}
    job_dir = folder / "job"  # the uploaded working dir
    job_dir.mkdir(parents=True)
    (job_dir / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    for name, text in files.items():
        (job_dir / name).write_text(text)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}}
    job_id = f"two-node-{uuid.uuid4().hex[:8]}"
    cluster.ray_ok(
        "job",
        "submit",
        "--address",
        cluster.dashboard,
        "--submission-id",
        job_id,
        "--no-wait",
        "--working-dir",
        str(job_dir),
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        *entrypoint,
    )
    status, logs = wait_for_job(cluster, job_id)
    assert status == "SUCCEEDED", f"job {job_id} ({' '.join(entrypoint)}): {status}\n{logs[-20000:]}"

    # On which node each trial ran: result pid -> trial actor -> node id (a finished job's actors are listed DEAD).
    actors = json.loads(
        cluster.ray_ok(
            "list",
            "actors",
            "--address",
            cluster.dashboard,
            "--format",
            "json",
            "--detail",
            "--filter",
            "class_name=ImplicitFunc",
            "--limit",
            "10000",
        )
    )
    node_of_pid = {actor["pid"]: actor["node_id"] for actor in actors if actor.get("node_id")}
    results = trial_results(folder / "runs" / f"{study['name']}.{study['arms'][0]['name']}")
    trial_nodes = {trial: node_of_pid.get(result["pid"]) for trial, result in results.items()}
    placement = "\n".join(
        f"  trial {t}: pid {r['pid']} on node {trial_nodes[t]}, {r['time_total_s']:.1f}s, finished {r['date']}"
        for t, r in sorted(results.items())
    )
    placement += "\ntrial actors (pid, node, state):\n" + "".join(
        f"  {a.get('pid')} {a.get('node_id')} {a.get('state')}\n" for a in actors
    )

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(study["name"])
    assert experiment is not None, f"no experiment '{study['name']}' in {uri}"
    parents = client.search_runs([experiment.experiment_id], f"tags.`{ROLE}` = 'study'")
    assert len(parents) == 1, [p.info.run_id for p in parents]
    attached = Path(client.download_artifacts(parents[0].info.run_id, STUDY_ARTIFACT_DIR, str(folder)))
    study_files = sorted(attached.glob("*.yaml"))
    assert len(study_files) == 1, f"{job_id}: the parent run has not one study file attached: {study_files}"
    return JobRecord(
        uri=uri,
        storage=study["storage"],
        logs=logs,
        parent=parents[0],
        trials=read.trial_runs(uri, study["name"]),
        attached_study=load_study(study_files[0]).model_dump(mode="json"),
        trial_nodes=trial_nodes,
        placement=placement,
    )


def check_record(job: JobRecord, expected_trials: int, nodes: dict[str, dict]) -> None:
    """One FINISHED parent run, one finished child run per trial, each trial run on a known node."""
    trials = job.trials
    assert job.parent.info.status == "FINISHED", job.parent.info
    assert len(trials) == expected_trials, trials[[TRIAL_ID_COLUMN, STATUS_COLUMN]]
    assert set(trials[PARENT_COLUMN]) == {job.parent.info.run_id}
    assert set(trials[STATUS_COLUMN]) <= {"completed", "pruned"}, trials[STATUS_COLUMN]
    assert trials["status"].eq("FINISHED").all(), trials["status"]
    assert trials["metrics.test/acc"].notna().all(), trials.get("metrics.test/acc")
    assert set(trials[TRIAL_ID_COLUMN]) == set(job.trial_nodes), job.trial_nodes
    assert all(node in nodes for node in job.trial_nodes.values()), f"trials on unknown nodes:\n{job.placement}"
    assert job.attached_study["storage"] == job.storage, job.attached_study


@pytest.mark.slow
def test_study_command_and_script_jobs_run_on_two_nodes_and_record_the_same(cluster, tmp_path):
    study = yaml.safe_load(STUDY.read_text())
    expected_trials = sum(arm.get("trials", 1) for arm in study["arms"])
    study["base"]["data"]["cache_dir"] = str(tmp_path / "features")

    # No --address for either form: the job's driver finds the cluster in RAY_ADDRESS, set by Ray Jobs.
    cli = run_job(cluster, tmp_path / "cli", study, [str(CLIPSTUDY), "run", "study.yaml"], {})
    script = run_job(cluster, tmp_path / "script", study, [sys.executable, "study.py"], {"study.py": SCRIPT})

    nodes = {n["node_id"]: n for n in cluster.alive_nodes()}
    assert len(nodes) == 2, nodes
    for job in (cli, script):
        check_record(job, expected_trials, nodes)
    assert set(cli.trial_nodes.values()) == set(nodes), (
        f"the command's trials did not run on both nodes:\n{cli.placement}job log (end):\n{cli.logs[-6000:]}"
    )
    assert METHOD_COLUMN in script.logs, script.logs[-6000:]  # the best trials the script printed

    # The same study, run the same: the seeded sampler proposed the same learning rates in both jobs.
    assert sorted(cli.trials[STATUS_COLUMN]) == sorted(script.trials[STATUS_COLUMN])
    assert set(cli.trials["params.train.lr"]) == set(script.trials["params.train.lr"]), (
        cli.trials["params.train.lr"],
        script.trials["params.train.lr"],
    )
    assert cli.trials["params.train.lr"].nunique() == expected_trials
    without_storage = [{**job.attached_study, "storage": None} for job in (cli, script)]
    assert without_storage[0] == without_storage[1]
    assert cli.attached_study["name"] == study["name"]
    print(f"command trials:\n{cli.placement}\nscript trials:\n{script.placement}")
