"""Faults: a killed worker resumes its trial from its last epoch; a killed study, or one stopped with Ctrl-C, resumes
with --resume."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from mlflow import MlflowClient

from clipstudy.tracking.recovery import INTERRUPTED
from clipstudy.tracking.schema import ARM, REASON, ROLE, STATUS, TRIAL_ID
from tests.study.conftest import RAY_STARTUP_TIMEOUT

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "clipstudy")
TIMEOUT_S = 420


def write_study(folder: Path, content: dict) -> Path:
    path = folder / f"{content['name']}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def study(name: str, trials: int, epochs: int, samples: int) -> dict:
    return {
        "name": name,
        "base": {
            "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
            "data": {"name": "synthetic", "num_classes": 4, "samples_per_class": samples},
            "train": {"epochs": epochs, "batch_size": 16},
        },
        "scheduler": {"kind": "fifo"},
        "max_concurrent": 1,
        "arms": [
            {
                "name": "lora",
                "method": "lora",
                "trials": trials,
                "search": {"train.lr": {"loguniform": [1.0e-3, 1.0e-2]}},
            }
        ],
    }


START_ATTEMPTS = 3


class CliRun:
    """`clipstudy run ARGS --local` in its own process group, its output in `workdir/run<N>.log`.

    Ray gives the node it starts a fixed 30 s to register with its GCS; on a 2-core machine busy with the rest of
    the suite that can take longer, and the command then exits with `RAY_STARTUP_TIMEOUT`, before the study has
    recorded anything. Only then is the same command started again, into the same log.
    """

    def __init__(self, workdir: Path, *args: str):
        self.workdir, self.args, self.attempts = workdir, args, 0
        self.log = workdir / f"run{len(list(workdir.glob('run*.log')))}.log"
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        self.attempts += 1
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        with self.log.open("w") as log:
            return subprocess.Popen(
                [CLI, "run", *self.args, "--local"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def ended(self) -> bool:
        """True once the command has exited for good (not when Ray timed its node out at start-up)."""
        if self.process.poll() is None:
            return False
        if self.attempts < START_ATTEMPTS and RAY_STARTUP_TIMEOUT in self.log.read_text():
            self.process = self._start()
            return False
        return True

    def wait(self, timeout: float = TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout
        while not self.ended():
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.process.args, timeout)
            time.sleep(0.2)
        return self.process.returncode


def wait(run: CliRun, workdir: Path) -> None:
    try:
        code = run.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        raise
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(workdir.glob("run*.log")))
    assert code == 0, logs


def query(workdir: Path, sql: str) -> list[tuple]:
    """Read the MLflow SQLite store directly (cheap to poll; the client takes seconds to start)."""
    path = workdir / "mlflow.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def poll(condition, what: str, run: CliRun, timeout: float = TIMEOUT_S, interval: float = 0.2) -> None:
    """Wait for `condition` while `run` goes on; its log ends the wait if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if run.ended():
            raise AssertionError(
                f"the study exited ({run.process.returncode}) before {what}:\n{run.log.read_text()[-3000:]}"
            )
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def trials(workdir: Path, name: str):
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return client, [r for r in runs if r.data.tags.get(ROLE) == "trial"], runs


def completed_count(workdir: Path) -> int:
    rows = query(workdir, f"select count(*) from tags where key='{STATUS}' and value='completed'")
    return rows[0][0] if rows else 0


def trial_run_without_epochs(workdir: Path) -> bool:
    """A trial's MLflow run is open but has logged no epoch yet: the moment Tune may not have checkpointed it."""
    rows = query(
        workdir,
        "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
        f"where t.key = '{ROLE}' and t.value = 'trial' and r.status = 'RUNNING' "
        "and not exists (select 1 from metrics m where m.run_uuid = r.run_uuid)",
    )
    return bool(rows and rows[0][0])


def test_killed_study_resumes_without_losing_or_duplicating_trials(tmp_path):
    path = write_study(tmp_path, study("resume_test", trials=3, epochs=3, samples=24))
    first = CliRun(tmp_path, str(path))
    poll(
        lambda: completed_count(tmp_path) >= 1 and trial_run_without_epochs(tmp_path),
        "a completed trial and the next trial's run just opened",
        first,
        interval=0.02,
    )
    kill_everything_under(first)
    _, before, _ = trials(tmp_path, "resume_test")
    done_before = {r.data.tags[TRIAL_ID]: r.info.run_id for r in before if r.data.tags[STATUS] == "completed"}
    open_before = {r.info.run_id for r in before if r.info.status == "RUNNING"}
    assert 1 <= len(done_before) < 3 and len(open_before) == 1

    wait(CliRun(tmp_path, str(path), "--resume"), tmp_path)

    client, after, runs = trials(tmp_path, "resume_test")
    assert len([r for r in runs if r.data.tags.get(ROLE) == "study"]) == 1
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    trial_ids = [r.data.tags[TRIAL_ID] for r in after]
    assert len(trial_ids) == len(set(trial_ids)), trial_ids
    completed = [r for r in after if r.data.tags[STATUS] == "completed"]
    assert len(completed) == 3
    for trial_id, run_id in done_before.items():
        run = next(r for r in after if r.data.tags[TRIAL_ID] == trial_id)
        assert run.info.run_id == run_id
        assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [0, 1, 2, 3]
    # The trial open at the kill either resumed under its own id (Tune had checkpointed it) or, an orphan
    # of a trial Tune never ran again, was closed as interrupted; at most that one run is not completed.
    interrupted = [r for r in after if r.data.tags[STATUS] != "completed"]
    assert {r.info.run_id for r in interrupted} <= open_before
    for run in interrupted:
        assert (run.info.status, run.data.tags[STATUS]) == ("FAILED", "failed")
        assert run.data.tags[REASON] == INTERRUPTED
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    states = [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.FAIL) == len(interrupted)
    assert optuna.trial.TrialState.RUNNING not in states


def kill_everything_under(run: CliRun) -> None:
    """SIGKILL the study process and every process it started (Ray's daemons and actors included)."""
    tree = psutil.Process(run.pid).children(recursive=True)
    os.killpg(run.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    run.process.wait()


def trial_processes(run: CliRun) -> list[psutil.Process]:
    """The Tune trial actors started by this run (not by any other Ray on the machine)."""
    found = []
    for process in psutil.Process(run.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if any("ImplicitFunc" in part for part in process.cmdline()):
                found.append(process)
    return found


EPOCHS = 4  # of about a second each here: time to see an epoch logged and act before the trial ends
EPOCHS_LOGGED = "select max(step) from metrics where key='val/acc'"


def epoch_logged(workdir: Path) -> bool:
    """Some trial has logged an epoch after its first evaluation (step 0)."""
    return (query(workdir, EPOCHS_LOGGED) or [(None,)])[0][0] not in (None, 0)


def running_trial_past_its_first_epoch(workdir: Path) -> bool:
    """A trial whose status is still `running` has logged epoch 1 or later. (A trial's status turns `completed`
    when its last epoch is recorded, while its MLflow run is still open.)"""
    rows = query(
        workdir,
        "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
        f"where t.key = '{STATUS}' and t.value = 'running' and r.status = 'RUNNING' "
        f"and exists (select 1 from tags k where k.run_uuid = r.run_uuid and k.key = '{ROLE}' and k.value = 'trial') "
        "and exists (select 1 from metrics m where m.run_uuid = r.run_uuid and m.key = 'val/acc' and m.step >= 1)",
    )
    return bool(rows and rows[0][0])


@dataclass
class StoppedStudy:
    """What the worker-kill and Ctrl-C scenario saw (one study run shared by the two tests below: each run of
    the study command starts Ray, and each trial actor imports torch and the engine, which is most of the
    suite's time on a small machine)."""

    workdir: Path
    study_file: Path
    logged_when_killed: int
    exit_code: int
    printed: str
    before: list  # the trial runs when the first run had exited
    runs_before: list  # every run of the experiment then, the parent included
    after: list  # the trial runs once --resume finished
    runs_after: list
    client: MlflowClient


@pytest.fixture(scope="module")
def stopped_study(tmp_path_factory) -> StoppedStudy:
    """Two LoRA trials and a probe arm. While the first trial trains, its process is killed (Tune restores it
    from its last epoch's checkpoint in a new actor); once it has completed and the second trial has logged an
    epoch, the study gets Ctrl-C. Then `--resume` finishes it."""
    workdir = tmp_path_factory.mktemp("stopped")
    content = study("ctrl_c_test", trials=2, epochs=EPOCHS, samples=400)
    content["arms"].append({"name": "probe", "method": "linear_probe"})
    path = write_study(workdir, content)
    first = CliRun(workdir, str(path))
    poll(lambda: epoch_logged(workdir), "epoch 1 of the first trial", first)
    victims = trial_processes(first)
    assert len(victims) == 1, victims
    victims[0].kill()
    logged_when_killed = query(workdir, EPOCHS_LOGGED)[0][0]
    poll(
        lambda: completed_count(workdir) == 1 and running_trial_past_its_first_epoch(workdir),
        "the restored first trial completed and the second past its first epoch",
        first,
        interval=0.05,
    )
    os.killpg(first.pid, signal.SIGINT)  # what a terminal sends its foreground process group
    exit_code = first.wait(timeout=TIMEOUT_S)
    _, before, runs_before = trials(workdir, "ctrl_c_test")
    wait(CliRun(workdir, str(path), "--resume"), workdir)
    client, after, runs_after = trials(workdir, "ctrl_c_test")
    return StoppedStudy(
        workdir,
        path,
        logged_when_killed,
        exit_code,
        (workdir / "run0.log").read_text(),
        before,
        runs_before,
        after,
        runs_after,
        client,
    )


def test_killed_worker_resumes_its_trial_from_the_last_epoch(stopped_study):
    assert stopped_study.logged_when_killed < EPOCHS, "the trial had finished before the kill: nothing was resumed"
    (restored,) = [r for r in stopped_study.before if r.data.tags[STATUS] == "completed"]
    assert restored.info.status == "FINISHED"
    steps = [m.step for m in stopped_study.client.get_metric_history(restored.info.run_id, "val/acc")]
    assert steps.count(0) == 1, f"restarted from scratch instead of the checkpoint: {steps}"
    assert set(steps) == set(range(EPOCHS + 1))
    assert "test/acc" in restored.data.metrics


def test_ctrl_c_stops_the_whole_study_and_resume_finishes_it(stopped_study):
    """Tune alone would end only the arm it is searching and the study would go on with the next arm."""
    s = stopped_study
    assert s.exit_code == 130
    assert f"Continue with: clipstudy run {s.study_file} --local --resume\n" in s.printed  # one line, to copy
    assert "Tuner.restore" not in s.printed  # Tune's advice is not the user's next step
    assert {r.data.tags[ARM] for r in s.before} == {"lora"}, "no arm starts after Ctrl-C"
    (parent,) = [r for r in s.runs_before if r.data.tags.get(ROLE) == "study"]
    assert parent.info.status == "KILLED"
    stopped = [r for r in s.before if r.data.tags[STATUS] == "running"]
    assert stopped and {r.info.status for r in stopped} == {"KILLED"}

    assert "probe: no saved search state at" in (s.workdir / "run1.log").read_text()  # it had not started
    assert len([r for r in s.runs_after if r.data.tags.get(ROLE) == "study"]) == 1
    statuses = sorted((r.data.tags[ARM], r.data.tags[STATUS]) for r in s.after)
    assert statuses == [("lora", "completed"), ("lora", "completed"), ("probe", "completed")]
    assert {r.info.run_id for r in stopped} <= {r.info.run_id for r in s.after}, "the stopped trial kept its run"
