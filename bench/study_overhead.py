"""Platform overhead of the study runner, and what ASHA saves on the quickstart.

    uv run python bench/study_overhead.py overhead [--epochs 8] [--trials 4]
    uv run python bench/study_overhead.py asha
    uv run python bench/study_overhead.py startup

overhead: one trial config (tiny model, synthetic data) timed as `clipstudy train` and inside
`clipstudy run --local` studies of 1 and of N identical trials (one at a time, in-process mode).
It splits what the platform adds into
  - start-up: command start -> the first trial's MLflow run opens in its trial actor (imports,
    ray.init, MLflow store and parent run, Tuner and searcher set-up, the trial actor started),
  - per trial: (wall(N) - wall(1)) / (N - 1), the marginal cost of one more trial, minus the work
    of that trial in `clipstudy train` (its wall time minus `clipstudy train --dry-run`, i.e. less
    process start, imports and building the model and data),
  - per epoch: the median time between epoch lines in the study minus that in `clipstudy train`.
startup: the once-per-study steps of the driver, one after the other in a fresh process: importing
`clipstudy.study.runner`, loading and validating the quickstart, `ray.init` of a local instance, and opening the
study's MLflow run on a new SQLite store and on an existing one.
asha: the quickstart study with ASHA and with FIFO (same seeded sampler, so the same configs
within Optuna's random start-up trials): epochs trained and the best validation accuracy per arm.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "clipstudy")


def environment() -> dict[str, str]:
    """One torch thread on both sides: with a thread per core, torch's threads wait on each other whenever
    another process takes a core, and a shared machine then slows whole epochs many times over."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([CLI, *args], cwd=cwd, env=environment(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


@dataclass
class Timeline:
    """A command's wall time and when (seconds after its start) each printed line matching a marker arrived."""

    start: float  # time.time() at launch, to compare with MLflow's timestamps
    wall: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)

    def first(self, marker: str) -> float:
        return next(t for t, line in self.lines if marker in line)

    def intervals(self, marker: str) -> list[float]:
        times = [t for t, line in self.lines if marker in line]
        return [b - a for a, b in itertools.pairwise(times)]


def traced(args: list[str], cwd: Path) -> Timeline:
    timeline = Timeline(start=time.time())
    begin = time.perf_counter()
    with subprocess.Popen(
        [CLI, *args], cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        for line in process.stdout:
            timeline.lines.append((time.perf_counter() - begin, line.rstrip()))
    timeline.wall = time.perf_counter() - begin
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, args)
    return timeline


def one_config_study(epochs: int, trials: int) -> dict:
    return {
        "name": f"overhead_{trials}",
        "base": {
            "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
            "data": {"name": "synthetic", "num_classes": 10, "samples_per_class": 300},
            "train": {"epochs": epochs, "batch_size": 64},
        },
        "scheduler": {"kind": "fifo"},
        "resources": {"cpus": os.cpu_count()},  # the whole machine, as `clipstudy train` has
        "max_concurrent": 1,
        "arms": [{"name": "lora", "method": "lora", "trials": trials}],
    }


def mlflow_times(workdir: Path, name: str, start: float) -> dict[str, float]:
    """Seconds after the command's start: parent run start/end, first trial run start, its first epoch logged."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], order_by=["start_time ASC"])
    parent = next(r for r in runs if r.data.tags.get("clipstudy.role") == "study")
    first = next(r for r in runs if r.data.tags.get("clipstudy.role") == "trial")
    epoch0 = min(m.timestamp for m in client.get_metric_history(first.info.run_id, "val/acc"))
    return {
        "parent_start": parent.info.start_time / 1000 - start,
        "parent_end": parent.info.end_time / 1000 - start,
        "trial_start": first.info.start_time / 1000 - start,
        "first_epoch": epoch0 / 1000 - start,
    }


def study_run(epochs: int, trials: int) -> tuple[Timeline, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        content = one_config_study(epochs, trials)
        path = workdir / "study.yaml"
        path.write_text(yaml.safe_dump(content))
        timeline = traced(["run", str(path), "--local"], workdir)
        return timeline, mlflow_times(workdir, content["name"], timeline.start)


def overhead(epochs: int, trials: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        path = workdir / "study.yaml"
        path.write_text(yaml.safe_dump(one_config_study(epochs, 1)))
        dry = timed(["train", str(path), "--dry-run"], workdir)
        train = traced(["train", str(path)], workdir)
    work = train.wall - dry
    one, marks = study_run(epochs, 1)
    many, _ = study_run(epochs, trials)
    started = one.first("  started")
    print(
        f"\n`clipstudy train`: {train.wall:.1f} s; `--dry-run` (start, imports, build): {dry:.1f} s; "
        f"the trial's work: {work:.1f} s ({epochs} epochs)"
    )
    print("\nStart-up of `clipstudy run --local` (1 trial), seconds after the command started:\n")
    print("| moment | at (s) | step (s) | what happened in the step |\n|---|---|---|---|")
    steps = [
        ("MLflow parent run opened", marks["parent_start"], "imports, ray.init, MLflow store (created) and run"),
        ("Tune started the first trial", started, "Tuner and searcher set up, trial actor started"),
        ("first trial's MLflow run opened", marks["trial_start"], "trial config resolved, MLflow child run created"),
        ("first trial's epoch 0 logged", marks["first_epoch"], "torch and the engine imported, model and data built"),
        ("MLflow parent run closed", marks["parent_end"], "the trial's epochs, test evaluation, results"),
        ("command exited", one.wall, "summary table, Ray shut down"),
    ]
    previous = 0.0
    for moment, at, what in steps:
        print(f"| {moment} | {at:.1f} | {at - previous:.1f} | {what} |")
        previous = at
    slope = (many.wall - one.wall) / (trials - 1)
    epoch_study = statistics.median(many.intervals("  epoch "))
    epoch_train = statistics.median(train.intervals(": train/loss"))
    print(f"\nPer trial ({epochs} epochs; {trials} trials in {many.wall:.1f} s, 1 trial in {one.wall:.1f} s):\n")
    print("| quantity | seconds |\n|---|---|")
    print(f"| start-up: command start -> first trial's MLflow run | {marks['trial_start']:.1f} |")
    print(f"| command start -> first trial's epoch 0 logged | {marks['first_epoch']:.1f} |")
    print(f"| start-up added: that minus `clipstudy train --dry-run` | {marks['first_epoch'] - dry:.1f} |")
    print(f"| marginal trial in the study: (wall({trials}) - wall(1)) / {trials - 1} | {slope:.1f} |")
    print(f"| the same trial's work in `clipstudy train` | {work:.1f} |")
    print(f"| added per trial | {slope - work:.1f} ({100 * (slope - work) / work:.0f} %) |")
    print(f"| epoch interval: study / `clipstudy train` (median) | {epoch_study:.2f} / {epoch_train:.2f} |")
    print(f"| added per epoch | {epoch_study - epoch_train:.2f} |")


STARTUP_STEPS = """
import time
from pathlib import Path

start = time.perf_counter()
def step(name):
    global start
    print(f"| {name} | {time.perf_counter() - start:.2f} |", flush=True)
    start = time.perf_counter()

import clipstudy.study.runner as study_module
from clipstudy.tracking import runs, store
step("import clipstudy.study.runner (Ray Tune, MLflow, pandas)")
study = study_module.load_study(QUICKSTART)
step("load and validate the quickstart (imports torch and the method and dataset registries)")
import ray
ray.init(include_dashboard=False, configure_logging=False)
step("ray.init of a local instance")
uri = store.resolve_tracking_uri(None, Path.cwd())
runs.start_study_run(uri, study.name, QUICKSTART, resume=False)
step("MLflow study run on a new SQLite store (creates its tables)")
runs.start_study_run(uri, study.name, QUICKSTART, resume=False)
step("MLflow study run on the existing store")
ray.shutdown()
step("ray.shutdown")
"""


def startup() -> None:
    quickstart = repr(str(ROOT / "studies" / "quickstart.yaml"))
    print("| step | seconds |\n|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        code = f"QUICKSTART = {quickstart}\n{STARTUP_STEPS}"
        command = [sys.executable, "-c", code]
        subprocess.run(command, cwd=folder, env=environment(), check=True, stderr=subprocess.DEVNULL)


def epochs_and_best(workdir: Path, name: str) -> tuple[int, dict[str, float]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = [
        r
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if r.data.tags.get("clipstudy.role") == "trial"
    ]
    epochs = sum(len(client.get_metric_history(r.info.run_id, "val/acc")) - 1 for r in runs)
    best: dict[str, float] = {}
    for run in runs:
        arm = run.data.tags["clipstudy.arm"]
        value = max(m.value for m in client.get_metric_history(run.info.run_id, "val/acc"))
        best[arm] = max(best.get(arm, 0.0), value)
    return epochs, best


def asha() -> None:
    study = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    results = {}
    for kind in ("asha", "fifo"):
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            variant = {**study, "scheduler": {**study["scheduler"], "kind": kind}}
            path = workdir / "quickstart.yaml"
            path.write_text(yaml.safe_dump(variant))
            wall = timed(["run", str(path), "--local"], workdir)
            results[kind] = (wall, *epochs_and_best(workdir, study["name"]))
    arms = sorted(results["fifo"][2])
    print("| scheduler | wall time (s) | epochs trained | " + " | ".join(f"best val/acc {a}" for a in arms) + " |")
    print("|---" * (3 + len(arms)) + "|")
    for kind, (wall, epochs, best) in results.items():
        print(f"| {kind} | {wall:.0f} | {epochs} | " + " | ".join(f"{best.get(a, 0):.4f}" for a in arms) + " |")
    saved = 1 - results["asha"][1] / results["fifo"][1]
    print(f"ASHA trained {saved:.0%} fewer epochs than FIFO.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["overhead", "asha", "startup"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()}-core CPU; load average {os.getloadavg()[0]:.1f} at start")
    if args.what == "overhead":
        overhead(args.epochs, args.trials)
    else:
        {"asha": asha, "startup": startup}[args.what]()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
