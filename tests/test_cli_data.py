"""`clipstudy data build` and the decoded-image store as a user meets it: an ImageFolder study decodes once,
the next trial opens the store, and a dry run opens it without extracting features."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from clipstudy.cli import app

runner = CliRunner()


def imagefolder_study(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for label in range(3):
        for i in range(12):
            path = tmp_path / "images" / f"class_{label}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(path)
    study = {
        "name": "own_images",
        "base": {
            "model": {"arch": "clipstudy-tiny", "pretrained": "none"},
            "data": {"name": "imagefolder", "root": str(tmp_path / "images"), "cache_dir": str(tmp_path / "cache")},
            "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        },
        "arms": [
            {"name": "probe", "method": "linear_probe"},
            {"name": "lora", "method": "lora", "config": {"augment": {"crop_scale": [0.5, 1.0], "hflip": 0.5}}},
        ],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "clipstudy.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def stores(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "stores"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.is_dir() else []


@pytest.mark.slow
def test_a_second_trial_opens_the_store_the_first_built(tmp_path):
    study = imagefolder_study(tmp_path)
    first = run_cli("train", str(study), "--arm", "probe")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("built the decoded-image store") == 3 and "opened" not in first.stderr
    second = run_cli("train", str(study), "--arm", "probe", "--set", "train.seed=1")
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stderr.count("opened the decoded-image store") == 3 and "built" not in second.stderr


def test_data_build_builds_every_arms_stores_and_a_dry_run_extracts_no_features(tmp_path):
    study = imagefolder_study(tmp_path)
    built = runner.invoke(app, ["data", "build", str(study)])
    assert built.exit_code == 0, built.output
    # val and test, shared by both arms, at 32 px; the train split at 32 px (probe) and 37 px (LoRA's crops)
    assert len(stores(tmp_path)) == 4
    assert built.output.count("37 px") == 1 and built.output.count("32 px") == 5
    dry = runner.invoke(app, ["train", str(study), "--arm", "probe", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "cached features: True" in dry.output and len(stores(tmp_path)) == 4
    assert not list((tmp_path / "cache").glob("*.safetensors"))  # no features extracted


def test_data_build_names_a_missing_folder(tmp_path):
    study = imagefolder_study(tmp_path)
    spec = yaml.safe_load(study.read_text())
    spec["base"]["data"]["root"] = str(tmp_path / "nowhere")
    study.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["data", "build", str(study)])
    assert result.exit_code == 2 and "nowhere is not a folder" in result.output
