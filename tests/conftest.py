"""Shared fixtures (tiny, fast trial configs, an isolated feature cache) and the order the suite runs in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite runs three pytest-xdist workers beside Ray's processes on as few as two cores. Each process's torch
# would start an OpenMP thread per core, and those threads spin while they wait for each other: the tests that
# are not slow took 546 core-s that way and 302 with one thread (docs/benchmarks.md). Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Each Ray instance the tests start (a dozen) would start an idle worker per CPU that no trial may ever use.
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")

LONGEST_FIRST = (
    "study/test_two_node_cluster.py",
    "study/test_faults.py",
    "study/test_gpu_scheduling.py",
    "study/test_multiworker.py",
    "study/test_record.py",
    "study/test_resume.py",
)
"""The modules that take minutes each (mostly waiting on Ray; docs/benchmarks.md), in the order they start.

`make test` runs the suite on three pytest-xdist workers, a module per worker at a time (`--dist loadfile
--no-loadscope-reorder`), in collection order: starting these first means none of them starts last and
runs alone at the end. The order changes nothing else; of the orders and worker counts measured
(docs/benchmarks.md), this one was fastest.
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONGEST_FIRST) if module == f"tests/{name}"), len(LONGEST_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def template_store(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite store: creating one costs 1-2 s of CPU (MLflow's migrations), copying it
    does not. Tests that write records copy it (`new_store`) instead of creating a store each."""
    import mlflow

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def new_store(template: Path, folder: Path) -> str:
    """A fresh store at `folder`/mlflow.db, copied from the template; returns its tracking URI."""
    shutil.copyfile(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


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


def seed000_augment() -> dict[str, object]:
    """The seed-000 full fine-tuning arm's augmentation (crop, flip, jitter, affine, erasing, Mixup/CutMix) as
    `tiny_config` overrides, read from the shipped study."""
    from clipstudy.studyfile import load_study

    study = load_study(Path(__file__).parents[1] / "studies" / "cifar100_seed000.yaml")
    return {f"augment__{key}": value for key, value in study.arm_config("full_ft").augment.model_dump().items()}


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
