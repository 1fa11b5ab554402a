"""Keys a study sets that its arm's method never reads: one warning per arm, shared keys only when no arm reads them."""

import warnings
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clipstudy.cli import app
from clipstudy.config import config_keys
from clipstudy.errors import ClipstudyWarning, UnreadKeyWarning
from clipstudy.methods import METHODS
from clipstudy.studyfile import load_study
from clipstudy.studyfile.unread import never_read, unread_keys, unread_overrides

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))
QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.yaml"


def write(tmp_path, content) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def loaded_with_warnings(path: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_study(path)
    return [str(w.message) for w in caught if issubclass(w.category, ClipstudyWarning)]


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_set_nothing_in_vain(path):
    assert loaded_with_warnings(path) == []


def test_a_key_the_arms_method_never_reads_warns_once_for_that_arm(tmp_path):
    lora = {"lora": {"r": 8}}
    arms = [
        {"name": "probe", "method": "linear_probe"},
        {"name": "lora", "method": "lora", "config": lora, "search": {"lora.r": {"choice": [4, 8]}}},
        {"name": "full", "method": "full_ft", "config": lora, "search": {"lora.r": {"choice": [4, 8, 16]}}},
    ]
    path = write(tmp_path, {"name": "s", "arms": arms})
    with pytest.warns(UnreadKeyWarning) as caught:
        load_study(path)
    assert [str(w.message) for w in caught] == [
        f"{path}: arms[2] (full): lora.r is set but full_ft never reads the lora section"
    ]


def test_a_base_key_warns_only_when_no_arm_reads_it(tmp_path):
    arms = [{"name": "zs", "method": "zero_shot"}, {"name": "full", "method": "full_ft"}]
    path = write(tmp_path, {"name": "s", "base": {"head.kind": "mlp", "lora": {"r": 4, "alpha": 8}}, "arms": arms})
    assert loaded_with_warnings(path) == [
        f"{path}: base: lora.r, lora.alpha are set but none of full_ft, zero_shot reads the lora section"
    ]


def test_a_key_of_a_section_read_in_part_is_named_alone(tmp_path):
    arms = [{"name": "probe", "method": "linear_probe", "config": {"train": {"head_lr": 0.1, "lr": 0.1}}}]
    assert loaded_with_warnings(write(tmp_path, {"name": "s", "arms": arms})) == [
        f"{tmp_path / 'study.yaml'}: arms[0] (probe): train.head_lr is set but linear_probe never reads it"
    ]


def test_zero_shot_reads_what_it_evaluates_with_but_nothing_of_training(tmp_path):
    config = {
        "train": {"batch_size": 32, "device": "cpu", "epochs": 3},
        "augment.hflip": 0.5,
        "prompts.templates": "single",
    }
    path = write(tmp_path, {"name": "s", "arms": [{"name": "zs", "method": "zero_shot", "config": config}]})
    assert loaded_with_warnings(path) == [
        f"{path}: arms[0] (zs): train.epochs is set but zero_shot never reads it",
        f"{path}: arms[0] (zs): augment.hflip is set but zero_shot never reads the augment section",
    ]


def test_overrides_are_shared_by_the_arms_they_apply_to():
    study = load_study(QUICKSTART)  # zero_shot, linear_probe, full_ft, lora
    assert unread_overrides(study.arms, ["lora.r=4", "train.lr=0.1"]) == []
    assert unread_overrides([study.arm("full_ft")], ["lora.r=4"]) == [
        "--set lora.r=4: lora.r is set but full_ft never reads the lora section"
    ]
    assert unread_keys(study) == []


def test_every_config_key_is_read_by_some_method():
    """A key no method reads would warn in every study that sets it: the declarations would be stale."""
    methods = [METHODS.get(name) for name in METHODS.names()]
    assert [key for key in config_keys() if never_read(key, methods) is not None] == []


def test_the_cli_prints_each_warning_once(tmp_path):
    arms = [{"name": "full", "method": "full_ft", "config": {"lora.r": 4}, "search": {"lora.r": {"choice": [4, 8]}}}]
    path = write(tmp_path, {"name": "s", "arms": arms})
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert output.count("warning: ") == 1
    assert "arms[0] (full): lora.r is set but full_ft never reads the lora section" in output
    assert f"ok: {path}" in output
