"""An MLflow store with known values, written through the MLflow client as the runner writes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param

from clipstudy.tracking.schema import ARM, METHOD, PARENT, RESOURCES, ROLE, RUNTIME, STATUS, TRIAL_ID
from tests.conftest import new_store

T0 = 1_700_000_000_000  # ms
CLASSES = [f"c{i:02d}" for i in range(12)]


@dataclass
class FakeTrial:
    arm: str
    method: str
    status: str  # completed | pruned | failed | running
    seconds: float | None  # wall clock; None: never ended
    val: list[float]  # val/acc per epoch, epoch 0 first
    train: list[float] | None = None
    final: dict[str, float] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    resources: dict[str, float] | None = None
    epoch_time: float = 10.0
    artifacts: bool = False
    runtime: dict[str, str] | None = None


def fixture_trials() -> list[FakeTrial]:
    probe = {"cpus": 2, "gpus": 0, "workers": 1}
    lora = {"gpus": 0.5, "cpus": 4, "workers": 2}
    return [
        # probe: B has the better TEST accuracy, A the better VAL: A must represent the arm
        FakeTrial(
            "probe",
            "linear_probe",
            "completed",
            3600,
            [0.1, 0.5, 0.7],
            [0.2, 0.6, 0.8],
            {
                "best_val/acc": 0.7,
                "test/acc": 0.65,
                "test/acc5": 0.9,
                "test/macro_f1": 0.6,
                "trainable_params": 650,
                "total_params": 100_650,
            },
            {"train.lr": 0.01, "train.seed": 0},
            probe,
        ),
        FakeTrial(
            "probe",
            "linear_probe",
            "completed",
            1800,
            [0.1, 0.4, 0.6],
            [0.2, 0.5, 0.7],
            {
                "best_val/acc": 0.6,
                "test/acc": 0.8,
                "test/acc5": 0.95,
                "test/macro_f1": 0.75,
                "trainable_params": 650,
                "total_params": 100_650,
            },
            {"train.lr": 0.1, "train.seed": 0},
            probe,
        ),
        FakeTrial(
            "probe",
            "linear_probe",
            "pruned",
            900,
            [0.1, 0.2],
            [0.2, 0.3],
            {},
            {"train.lr": 0.001, "train.seed": 0},
            probe,
        ),
        FakeTrial(
            "lora",
            "lora",
            "completed",
            7200,
            [0.1, 0.6, 0.8, 0.9],
            [0.2, 0.7, 0.9, 0.95],
            {
                "best_val/acc": 0.9,
                "test/acc": 0.85,
                "test/acc5": 0.99,
                "test/macro_f1": 0.84,
                "test/hm": 0.72,
                "retention/digits/delta": -0.05,
                "trainable_params": 5_000,
                "total_params": 105_000,
            },
            {"lora.r": 8, "train.lr": 3e-4},
            lora,
            epoch_time=20.0,
            artifacts=True,
            runtime={"device": "cuda (NVIDIA H100 80GB HBM3)", "precision": "bf16"},
        ),
        FakeTrial("lora", "lora", "failed", 360, [0.1], None, {}, {"lora.r": 64, "train.lr": 1e-2}, lora),
        FakeTrial(
            "lora",
            "lora",
            "running",
            None,
            [0.1, 0.3],
            [0.2, 0.4],
            {},
            {"lora.r": 4, "train.lr": 1e-3},
            lora,
            epoch_time=30.0,
        ),
        # zero-shot: nothing trains, no resource tags (an older record): counted in device-hours; no top-5
        FakeTrial(
            "zs",
            "zero_shot",
            "completed",
            36,
            [0.3],
            None,
            {
                "best_val/acc": 0.3,
                "test/acc": 0.28,
                "test/macro_f1": 0.2,
                "trainable_params": 0,
                "total_params": 100_000,
            },
            {},
        ),
    ]


def per_class_frame() -> pd.DataFrame:
    f1 = np.linspace(0.95, 0.40, len(CLASSES))
    return pd.DataFrame(
        {"class": CLASSES, "precision": f1, "recall": f1, "f1": f1, "support": np.full(len(CLASSES), 20)}
    )


def confusion_array() -> np.ndarray:
    matrix = np.diag(np.full(len(CLASSES), 15))
    matrix[3, 5] = 4  # c03 -> c05: the most frequent mistake
    matrix[5, 3] = 2
    matrix[7, 1] = 3
    matrix[0, 11] = 1
    return matrix


def write_study(uri: str, name: str, trials: list[FakeTrial], workdir: Path) -> dict[str, str]:
    """Write a study record with `trials`; return {'parent': id, '<arm>/<i>': run id, ...}."""
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment(name, artifact_location=(workdir / "mlruns").as_uri())
    parent = client.create_run(experiment, tags={ROLE: "study"}, run_name=name, start_time=T0)
    ids = {"parent": parent.info.run_id}
    for i, trial in enumerate(trials):
        tags = {
            PARENT: parent.info.run_id,
            ROLE: "trial",
            ARM: trial.arm,
            METHOD: trial.method,
            TRIAL_ID: f"t{i}",
            STATUS: trial.status,
            **{f"{RESOURCES}.{k}": str(v) for k, v in (trial.resources or {}).items()},
            **{f"{RUNTIME}.{k}": v for k, v in (trial.runtime or {}).items()},
        }
        start = T0 + 1000 * i
        run = client.create_run(experiment, tags=tags, run_name=f"{trial.arm}/t{i}", start_time=start)
        run_id = ids[f"{trial.arm}/{i}"] = run.info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in {"method": trial.method, **trial.params}.items()])
        metrics = []
        for epoch, val in enumerate(trial.val):
            values = {
                "val/acc": val,
                "epoch_time_s": trial.epoch_time,
                "throughput_img_s": 100.0 * (epoch + 1),
                "peak_mem_mb": 500.0 + epoch,
            }
            if trial.train is not None:
                values["train/acc"] = trial.train[epoch]
            metrics += [Metric(k, v, start, epoch) for k, v in values.items()]
        metrics += [Metric(k, v, start, len(trial.val) - 1) for k, v in trial.final.items()]
        client.log_batch(run_id, metrics=metrics)
        if trial.artifacts:
            folder = workdir / f"artifacts-{i}"
            folder.mkdir(parents=True)
            per_class_frame().to_csv(folder / "per_class.csv", index=False)
            confusion = pd.DataFrame(confusion_array(), index=pd.Index(CLASSES, name="true"), columns=CLASSES)
            confusion.to_csv(folder / "confusion_matrix.csv")
            client.log_artifacts(run_id, str(folder))
        if trial.seconds is not None:
            status = "FAILED" if trial.status == "failed" else "FINISHED"
            client.set_terminated(run_id, status=status, end_time=start + int(1000 * trial.seconds))
    client.set_terminated(parent.info.run_id, end_time=T0 + 10_000_000)
    return ids


Store = tuple[str, dict[str, str], Path]
"""(tracking URI, run ids by `write_study`'s keys, the store's folder)."""


def fixture_store(template: Path, folder: Path) -> Store:
    uri = new_store(template, folder)
    return uri, write_study(uri, "fixture_study", fixture_trials(), folder), folder


@pytest.fixture
def store(tmp_path, monkeypatch, template_store) -> Store:
    """The fixture study's store, for a test that adds to it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return fixture_store(template_store, tmp_path)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory, template_store) -> Iterator[Store]:
    """The fixture study's store, written once for the tests of a module that only read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield fixture_store(template_store, tmp_path_factory.mktemp("store"))
