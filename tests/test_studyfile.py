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
