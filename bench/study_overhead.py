"""Platform overhead of the study runner, and what ASHA saves on the quickstart.

    uv run python bench/study_overhead.py overhead [--epochs 30]
    uv run python bench/study_overhead.py asha

overhead: one identical trial (tiny model, synthetic data) timed as `clipstudy train` and as a
one-trial study through `clipstudy run --local`, in Ray Train's in-process mode and with a
separate worker; the difference is what Ray, Tune, MLflow and checkpoints add to a trial.
asha: the quickstart study with ASHA and with FIFO (same seeded sampler, so the same configs
within Optuna's random start-up trials): epochs trained and the best validation accuracy per arm.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "clipstudy")


def timed(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    subprocess.run([CLI, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def one_trial_study(epochs: int, in_process: bool) -> dict:
    return {
        "name": f"overhead_{'inproc' if in_process else 'worker'}",
        "base": {
            "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
            "data": {"name": "synthetic", "num_classes": 10, "samples_per_class": 300},
            "train": {"epochs": epochs, "batch_size": 64},
        },
        "scheduler": {"kind": "fifo"},
        "resources": {"cpus": 1, "in_process": in_process},
        "arms": [{"name": "lora", "method": "lora"}],
    }


def overhead(epochs: int) -> None:
    print("| mode | wall time (s) | added to the trial (s) | added (%) |\n|---|---|---|---|")
    baseline = None
    for in_process in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            path = workdir / "study.yaml"
            path.write_text(yaml.safe_dump(one_trial_study(epochs, in_process)))
            if baseline is None:
                baseline = timed(["train", str(path)], workdir)
                print(f"| clipstudy train (no Ray, no MLflow) | {baseline:.1f} | - | - |", flush=True)
            wall = timed(["run", str(path), "--local"], workdir)
            mode = "in-process (num_workers=0)" if in_process else "worker actor (num_workers=1)"
            print(
                f"| clipstudy run --local, {mode} | {wall:.1f} | {wall - baseline:.1f} | "
                f"{100 * (wall - baseline) / baseline:.0f} |",
                flush=True,
            )


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
    parser.add_argument("what", choices=["overhead", "asha"])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()}-core CPU; load average {os.getloadavg()[0]:.1f} at start")
    overhead(args.epochs) if args.what == "overhead" else asha()


if __name__ == "__main__":
    main()
