"""Shared fixtures (tiny, fast trial configs, an isolated feature cache) and the order the suite runs in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LONGEST_FIRST = (
    "study/test_two_node_cluster.py",
    "study/test_gpu_scheduling.py",
    "study/test_record.py",
    "study/test_faults.py::test_ctrl_c_stops_the_whole_study_and_resume_finishes_it",
    "study/test_resume.py",
    "study/test_faults.py::test_killed_worker_resumes_its_trial_from_the_last_epoch",
    "study/test_faults.py::test_killed_study_resumes_without_losing_or_duplicating_trials",
    "study/test_multiworker.py",
)
"""What takes minutes (mostly waiting on Ray; docs/benchmarks.md), in the order it starts.

`make test` runs the suite on four pytest-xdist workers (`--dist loadgroup --no-loadscope-reorder`).
Each test module is one unit of work, so a module's fixtures are built once (a study run, a Ray
instance), except the modules in `PER_TEST`, whose tests share nothing and go to workers one by one.
xdist gives each worker the next unit while its current one is still running: in this order the first
four units start at once, each paired with one of the next four, the longest with the shortest, and
the rest of the suite fills in behind them. The order changes nothing else.
"""

PER_TEST = ("study/test_faults.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::")[0]
        if not module.endswith(PER_TEST):
            item.add_marker(pytest.mark.xdist_group(module))

    def rank(item: pytest.Item) -> int:
        matches = (i for i, unit in enumerate(LONGEST_FIRST) if item.nodeid.startswith(f"tests/{unit}"))
        return next(matches, len(LONGEST_FIRST))

    items.sort(key=rank)


@pytest.fixture
def tiny_config(tmp_path):
    """Build a TrialConfig on the tiny model and small synthetic data; keyword args are dotted overrides."""
    from clipstudy.studyfile import build_config

    def make(method: str = "linear_probe", **overrides):
        base = {
            "method": method,
            "model.arch": "clipstudy-tiny",
            "model.pretrained": "none",
            "data.name": "synthetic",
            "data.num_classes": 4,
            "data.samples_per_class": 24,
            "data.cache_dir": str(tmp_path / "features"),
            "train.epochs": 1,
            "train.batch_size": 16,
            "train.device": "cpu",
        }
        return build_config(base, {k.replace("__", "."): v for k, v in overrides.items()})

    return make


def interrupted_after_first_epoch(cfg, folder: Path) -> Path:
    """Train `cfg`, checkpoint after epoch 1 and stop there (an interrupted trial); return the checkpoint."""
    from clipstudy.engine import Callback, Trainer

    checkpoint = folder / "ckpt.pt"

    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 1:
                trainer.save_checkpoint(checkpoint)
                return True
            return None

    Trainer(cfg, [StopAfterOne()]).fit()
    return checkpoint
