from pathlib import Path

import pytest
import yaml

from clipstudy.errors import ConfigError
from clipstudy.studyfile import load_study

STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    study = load_study(path)
    for arm in study.arms:
        assert study.arm_config(arm).method == arm.method


def test_quickstart_has_the_four_arms():
    study = load_study(Path(__file__).parents[1] / "studies" / "quickstart.yaml")
    assert [a.name for a in study.arms] == ["zero_shot", "linear_probe", "full_ft", "lora"]
    assert {study.arm_config(a).model.arch for a in study.arms} == {"clipstudy-tiny"}
    assert {study.arm_config(a).data.name for a in study.arms} == {"digits"}


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
    assert f"{path}: arms[0] (a): lora.r" in message
    assert f"{path}: arms[1] (b): unknown config key 'train.lrr'" in message


def test_typo_at_the_top_and_unknown_method(tmp_path):
    with pytest.raises(ConfigError, match=r"armz: Extra inputs are not permitted"):
        load_study(write(tmp_path, {"name": "x", "armz": []}))
    with pytest.raises(ConfigError, match="unknown method 'probe'"):
        load_study(write(tmp_path, {"name": "x", "arms": [{"name": "a", "method": "probe"}]}))
    with pytest.raises(ConfigError, match="arm names must be unique"):
        load_study(write(tmp_path, {"name": "x", "arms": [{"name": "a", "method": "lora"}] * 2}))


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
    assert "arms.0.search.train.lr: Value error, loguniform: low (0.01) > high (0.0001)" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_study(lora_search_study(tmp_path, search))
    message = str(error.value)
    assert "search.lora.rank: unknown config key 'lora.rank' (did you mean 'lora.r'?)" in message
    assert "search.lora.r=0: arms[0] (lora): lora.r: Input should be greater than 0" in message
    assert "unknown config key 'head.knd' (did you mean 'head.kind'?)" in message


def test_settings_are_checked(tmp_path):
    arms = [{"name": "a", "method": "lora"}]
    with pytest.raises(ConfigError, match="would select the worst trial"):
        load_study(write(tmp_path, {"name": "x", "arms": arms, "metric": "val/loss", "mode": "max"}))
    with pytest.raises(ConfigError, match="whole number"):
        load_study(write(tmp_path, {"name": "x", "arms": arms, "resources": {"gpus": 1.5}}))
    shared = {"name": "x", "arms": [{**arms[0], "resources": {"gpus": 0.5, "workers": 2}}]}
    with pytest.raises(ConfigError, match=r"arms\.0\.resources: .*cannot share a GPU \(NCCL needs a GPU per rank\)"):
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

    from clipstudy.study import local_defaults

    arms = [{"name": "a", "method": "lora"}]
    plain = load_study(write(tmp_path, {"name": "x", "arms": arms}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_defaults(plain).resources.gpus == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert local_defaults(plain).resources.gpus == 1
    explicit = load_study(write(tmp_path, {"name": "x", "arms": arms, "resources": {"cpus": 2}}))
    assert local_defaults(explicit).resources.gpus == 0
