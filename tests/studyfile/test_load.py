from pathlib import Path

import pytest
import yaml

from clipstudy.errors import ConfigError
from clipstudy.studyfile import load_study

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    study = load_study(path)
    for arm in study.arms:
        assert study.arm_config(arm).method == arm.method


def test_quickstart_has_the_four_arms():
    study = load_study(Path(__file__).parents[2] / "studies" / "quickstart.yaml")
    assert [a.name for a in study.arms] == ["zero_shot", "linear_probe", "full_ft", "lora"]
    configs = [study.arm_config(a) for a in study.arms]
    assert {(c.model.arch, c.model.pretrained) for c in configs} == {("clipstudy-micro", "synthetic")}
    assert {c.data.name for c in configs} == {"digits"} and {tuple(c.eval.retention) for c in configs} == {("shapes",)}
    assert [c.wise.enabled for c in configs] == [False, False, True, False]  # full FT's WiSE-FT curve


def write(tmp_path, content) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_every_problem_is_listed_with_file_and_path(tmp_path):
    path = write(
        tmp_path,
        {
            "name": "bad",
            "arms": [
                {"name": "a", "method": "lora", "config": {"lora": {"r": 0}}},
                {"name": "b", "method": "linear_probe", "config": {"train.lrr": 1}},
            ],
        },
    )
    with pytest.raises(ConfigError) as error:
        load_study(path)
    message = str(error.value)
    assert f"{path}: arms[0] (a).config: lora.r: Input should be greater than 0" in message
    assert f"{path}: arms[1] (b).config: unknown config key 'train.lrr' (did you mean 'train.lr'?)" in message


def test_typo_at_the_top_and_unknown_method(tmp_path):
    with pytest.raises(ConfigError, match=r"armz: unknown key \(did you mean 'arms'\?\); valid: name, description"):
        load_study(write(tmp_path, {"name": "x", "armz": []}))
    with pytest.raises(ConfigError, match="unknown method 'probe'"):
        load_study(write(tmp_path, {"name": "x", "arms": [{"name": "a", "method": "probe"}]}))
    with pytest.raises(ConfigError, match="arm names must be unique"):
        load_study(write(tmp_path, {"name": "x", "arms": [{"name": "a", "method": "lora"}] * 2}))


def test_problems_of_every_layer_are_listed_together_each_once(tmp_path):
    """A broken structure does not hide the config problems behind it; a base problem is named once, as base."""
    path = write(
        tmp_path,
        {
            "name": "bad",
            "base": {"data": {"name": "digts"}, "trian": {"epochs": 2}},
            "resources": {"cpus": -1, "gpu": 1},
            "arms": [
                {
                    "name": "lora",
                    "method": "lora",
                    "trails": 3,
                    "config": {"lora": {"r": 0}},
                    "search": {
                        "train.lr": {"loguniform": [1e-2, 1e-3]},
                        "head.dropout": {"uniform": [0, "x"]},
                        "lora.rnk": {"choice": [1]},
                    },
                },
                {"name": "x", "method": "lorra"},
            ],
        },
    )
    with pytest.raises(ConfigError) as error:
        load_study(path)
    lines = str(error.value).splitlines()
    expected = [
        "arms[0] (lora).search.train.lr: loguniform: low (0.01) > high (0.001)",
        "arms[0] (lora).search.head.dropout.uniform.1: Input should be a valid number",
        "arms[0] (lora).trails: unknown key (did you mean 'trials'?)",
        "resources.cpus: Input should be greater than 0",
        "resources.gpu: unknown key (did you mean 'gpus'?)",
        "base: unknown config key 'trian.epochs' (did you mean 'train.epochs'?)",
        "base: data.name: unknown dataset 'digts' (did you mean 'digits'?)",
        "arms[0] (lora).config: lora.r: Input should be greater than 0",
        "arms[0] (lora).search.lora.rnk: unknown config key 'lora.rnk' (did you mean 'lora.r'?)",
        "arms[1] (x): method: unknown method 'lorra' (did you mean 'lora'?)",
    ]
    for text in expected:
        assert sum(line.startswith(f"{path}: {text}") for line in lines) == 1, text
    assert len(lines) == len(expected)


def test_a_study_whose_structure_cannot_be_salvaged_still_lists_its_problems(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_study(write(tmp_path, {"arms": ["lora"], "metric": "val/f1"}))
    message = str(error.value)
    assert "name: Field required" in message
    assert "arms[0]: Input should be a valid dictionary" in message
    assert "metric: Input should be 'val/acc', 'val/loss', 'train/acc' or 'train/loss'" in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_study(tmp_path / "nope.yaml")


def lora_search_study(tmp_path, search: dict) -> Path:
    return write(tmp_path, {"name": "bad", "arms": [{"name": "lora", "method": "lora", "search": search}]})


def test_search_problems_are_listed_by_field_path(tmp_path):
    search = {
        "lora.rank": {"choice": [4, 8]},
        "lora.r": {"choice": [0, 8]},
        "head.dropout": {"uniform": [0, 0.5], "when": {"head.knd": "mlp"}},
    }
    with pytest.raises(ConfigError) as error:
        load_study(lora_search_study(tmp_path, {**search, "train.lr": {"loguniform": [1e-2, 1e-4]}}))
    assert "arms[0] (lora).search.train.lr: loguniform: low (0.01) > high (0.0001)" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_study(lora_search_study(tmp_path, search))
    message = str(error.value)
    assert "search.lora.rank: unknown config key 'lora.rank' (did you mean 'lora.r'?)" in message
    assert "arms[0] (lora).search.lora.r=0: lora.r: Input should be greater than 0" in message
    assert "unknown config key 'head.knd' (did you mean 'head.kind'?)" in message


def test_settings_are_checked(tmp_path):
    arms = [{"name": "a", "method": "lora"}]
    with pytest.raises(ConfigError, match="would select the worst trial"):
        load_study(write(tmp_path, {"name": "x", "arms": arms, "metric": "val/loss", "mode": "max"}))
    with pytest.raises(ConfigError, match="whole number"):
        load_study(write(tmp_path, {"name": "x", "arms": arms, "resources": {"gpus": 1.5}}))
    shared = {"name": "x", "arms": [{**arms[0], "resources": {"gpus": 0.5, "workers": 2}}]}
    with pytest.raises(ConfigError, match=r"arms\[0\] \(a\)\.resources: .*cannot share a GPU \(NCCL needs a GPU"):
        load_study(write(tmp_path, shared))
    with pytest.raises(ConfigError, match="grid search needs"):
        load_study(
            write(
                tmp_path,
                {
                    "name": "x",
                    "search": {"algorithm": "grid"},
                    "arms": [{**arms[0], "search": {"train.lr": {"uniform": [0.1, 0.2]}}}],
                },
            )
        )
    study = load_study(write(tmp_path, {"name": "x", "arms": arms}))
    assert (study.metric, study.mode, study.scheduler.kind, study.search.algorithm) == ("val/acc", "max", "asha", "tpe")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_a_study_round_trips_through_yaml(path, tmp_path):
    study = load_study(path)
    dumped = yaml.safe_dump(study.model_dump(mode="json", by_alias=True, exclude_none=True))
    again = load_study(write(tmp_path, yaml.safe_load(dumped)))
    assert again == study


def test_local_mode_gives_trials_the_gpu_when_the_study_does_not_say(tmp_path, monkeypatch):
    import torch

    from clipstudy.study.runner import local_defaults

    arms = [{"name": "a", "method": "lora"}]
    plain = load_study(write(tmp_path, {"name": "x", "arms": arms}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_defaults(plain).resources.gpus == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert local_defaults(plain).resources.gpus == 1
    explicit = load_study(write(tmp_path, {"name": "x", "arms": arms, "resources": {"cpus": 2}}))
    assert local_defaults(explicit).resources.gpus == 0
