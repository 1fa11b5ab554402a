"""The pure typed schema: defaults, field validators, and nothing of the plug-ins below it."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from clipstudy.config import TrialConfig, expand


def validate(flat: dict) -> TrialConfig:
    return TrialConfig.model_validate(expand(flat))


def test_defaults_come_from_one_place():
    cfg = TrialConfig()
    assert cfg.train.lr == 1e-3 and cfg.lora.targets == ["q", "v"]
    assert validate({}) == cfg


def test_loss_weights_are_left_to_the_method():
    """Unset until a study resolves the config with its method's defaults (`Method.loss_defaults`)."""
    loss = TrialConfig().loss
    assert (loss.ce_weight, loss.contrastive_weight, loss.scl_weight, loss.vld_weight) == (None, None, None, None)


def test_wise_alphas_are_sorted_and_need_distinct_steps():
    assert TrialConfig().wise.alphas == [i / 10 for i in range(11)]
    assert validate({"wise.alphas": [1.0, 0.5, 0.0, 0.5]}).wise.alphas == [0.0, 0.5, 1.0]
    with pytest.raises(ValidationError, match=r"at least 0\.01"):
        validate({"wise.alphas": [0.5, 0.501]})
    with pytest.raises(ValidationError, match=r"wise\.alphas"):
        validate({"wise.alphas": [1.5]})


def test_token_keep_ratio_is_a_share():
    with pytest.raises(ValidationError, match=r"tokens\.keep_ratio"):
        validate({"tokens.keep_ratio": 0.0})
    with pytest.raises(ValidationError, match=r"tokens\.saliency"):
        validate({"tokens.saliency": "random"})


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        ({"lora.targets": ["q", "q"]}, "entries must be unique"),
        ({"lora.towers": []}, "at least 1 item"),
        ({"eval.retention": ["dtd", "dtd"]}, "entries must be unique"),
        ({"augment.erasing_scale": [0.5, 0.1]}, "low must not exceed high"),
        ({"prompts.classnames": "rawx"}, "use 'readable', 'raw' or a list with one name per class"),
        ({"prompts.classnames": ["only one"]}, "at least 2 items"),
    ],
)
def test_list_and_range_fields_are_checked(flat, expected):
    with pytest.raises(ValidationError, match=expected):
        validate(flat)


def test_prompt_classnames_are_a_mode_or_a_list():
    assert validate({}).prompts.classnames == "readable"
    assert validate({"prompts.classnames": "raw"}).prompts.classnames == "raw"
    assert validate({"prompts.classnames": ["cat", "dog"]}).prompts.classnames == ["cat", "dog"]


def test_names_are_any_string_to_the_schema_alone():
    """Which methods, datasets and architectures exist is the registries' business (`clipstudy.studyfile`)."""
    cfg = validate({"method": "nothing", "data.name": "nowhere", "model.arch": "ViT-Z", "eval.retention": ["x"]})
    assert (cfg.method, cfg.data.name, cfg.model.arch, cfg.eval.retention) == ("nothing", "nowhere", "ViT-Z", ["x"])


def test_the_schema_imports_no_plug_in():
    code = (
        "import sys\n"
        "import clipstudy.config\n"
        "clipstudy.config.TrialConfig()\n"
        "below = ('clipstudy.data', 'clipstudy.methods', 'clipstudy.models')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(below))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
