"""The seed-000 studies, as written and as run: every arm trains on the tiny model and digits with the
README's overrides, keeping the rest of its recipe (schedule, dtypes, prompts, heads)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clipstudy.cli import app
from clipstudy.studyfile import load_study

STUDIES = Path(__file__).parents[1] / "studies"
SEED_STUDIES = [STUDIES / "cifar100_seed000.yaml", STUDIES / "cifar100_seed000_as_run.yaml"]
TINY = {"model.arch": "clipstudy-tiny", "model.pretrained": "none", "data.name": "digits", "train.epochs": "1"}
ARMS = [(path, arm.name) for path in SEED_STUDIES for arm in load_study(path).arms]


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize(("path", "arm"), ARMS, ids=[f"{p.stem}:{a}" for p, a in ARMS])
def test_every_seed_arm_runs_on_the_tiny_model_with_its_recipe(path, arm, tmp_path):
    out = tmp_path / "out"
    overrides = {**TINY, "data.cache_dir": str(tmp_path / "cache")}
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(app, ["train", str(path), "--arm", arm, *sets, "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1 and all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    study = load_study(path)
    recipe = flat(study.arm_config(study.arm(arm)).model_dump(mode="json"))
    ran = flat(yaml.safe_load((out / "config.yaml").read_text()))
    changed = {key for key in recipe if ran[key] != recipe[key]}
    assert changed <= {*overrides, "data.num_classes"}, f"the tiny run lost the arm's {sorted(changed - {*overrides})}"


def test_the_as_run_study_holds_what_the_notebook_ran():
    study = load_study(STUDIES / "cifar100_seed000_as_run.yaml")
    zero_shot, full_ft, lora = (study.arm_config(study.arm(name)) for name in ("zero_shot", "full_ft", "lora"))
    assert (zero_shot.prompts.custom, zero_shot.prompts.templates) == (["a photo of a {}"], "single")
    assert zero_shot.prompts.classnames == "raw" and zero_shot.model.interpolation == "bilinear"
    assert (full_ft.model.weights_dtype, full_ft.train.precision, full_ft.train.adam_eps) == ("fp16", "fp32", 1e-6)
    assert (full_ft.train.t_mult, full_ft.train.eta_min, full_ft.train.scheduler_step) == (2, 1e-7, "epoch")
    assert lora.lora.towers == ["vision"] and lora.model.weights_dtype == "fp32"
    assert not full_ft.augment.image_ops and full_ft.augment.mixing
