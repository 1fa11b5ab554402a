"""Config layers -> one validated TrialConfig: every problem named by its layer and field, method defaults in."""

import pytest

from clipstudy.config import TrialConfig, flatten
from clipstudy.errors import ConfigError, Problem
from clipstudy.methods import METHODS
from clipstudy.studyfile import build_config, resolve_config


def test_defaults_come_from_one_place():
    cfg = build_config({})
    assert cfg == METHODS.get("linear_probe").with_defaults(TrialConfig())
    assert cfg.train.lr == 1e-3 and cfg.lora.targets == ["q", "v"]


def test_overrides_are_yaml_values():
    cfg = build_config({"method": "lora"}, overrides=["train.lr=3e-4", "lora.targets=[q,k]", "lora.r=4"])
    assert (cfg.train.lr, cfg.lora.targets, cfg.lora.r) == (3e-4, ["q", "k"], 4)


def test_layers_merge_nested_and_dotted():
    cfg = build_config({"train": {"lr": 0.1, "epochs": 3}}, {"train.lr": 0.2})
    assert (cfg.train.lr, cfg.train.epochs) == (0.2, 3)


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"train.lrr": 1}, "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ({"trian": {"lr": 1}}, "unknown config key 'trian.lr'"),
        ({"lora.r": 0}, "lora.r: Input should be greater than 0"),
        ({"method": "lorra"}, "unknown method 'lorra' (did you mean 'lora'?); valid: clip_cite, flyp, full_ft,"),
        ({"lora.targets": ["q", "x"]}, "lora.targets.1"),
        ({"augment.crop_scale": [0.9, 0.5]}, "low must not exceed high"),
        ({"train": 3}, "'train' is a section"),
        ({"model.arch": "ViT-B-3"}, "model.arch: unknown architecture 'ViT-B-3' (did you mean 'ViT-B-32"),
        ({"model.arch": "torchvision/resnet51"}, "unknown architecture 'torchvision/resnet51' (did you mean 'torch"),
        ({"data.name": "cifar1000"}, "data.name: unknown dataset 'cifar1000' (did you mean 'cifar100'?)"),
    ],
)
def test_bad_config_names_the_field(layer, expected):
    with pytest.raises(ConfigError) as error:
        build_config(layer, where="study.yaml")
    assert expected in str(error.value)
    assert "study.yaml" in str(error.value)


def test_bad_override_is_named():
    with pytest.raises(ConfigError, match=r"--set train\.lrr=1"):
        build_config({}, overrides=["train.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        build_config({}, overrides=["train.lr"])


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"data.shots": 0}, "data.shots: Input should be greater than or equal to 1"),
        ({"data.shot_seed": -1}, "data.shot_seed: Input should be greater than or equal to 0"),
        ({"data.classes": "novel"}, "data.classes: Input should be 'all', 'base' or 'new'"),
        ({"eval.retention": ["imagenett"]}, "unknown dataset 'imagenett' (did you mean 'imagenet'?)"),
        ({"eval.retention": ["dtd", "dtd"]}, "entries must be unique"),
        ({"eval.retention_per_class": 0}, "eval.retention_per_class: Input should be greater than or equal to 1"),
    ],
)
def test_protocol_keys_are_validated(layer, expected):
    with pytest.raises(ConfigError) as error:
        build_config(layer, where="study.yaml")
    assert expected in str(error.value) and "study.yaml" in str(error.value)


def test_protocol_keys_take_values():
    cfg = build_config({"data": {"shots": 16, "shot_seed": 2, "classes": "base"}, "eval.retention": ["imagenet"]})
    assert (cfg.data.shots, cfg.data.shot_seed, cfg.data.classes, cfg.eval.retention) == (16, 2, "base", ["imagenet"])


def test_loss_weights_default_per_method_and_stay_numbers_in_the_record():
    weights = ("ce_weight", "contrastive_weight", "scl_weight", "vld_weight")
    expected = {
        "full_ft": (1.0, 0.0, 0.0, 0.0),
        "flyp": (0.0, 1.0, 0.0, 0.0),
        "clip_cite": (1.0, 0.0, 0.7, 0.1),
    }
    for method, values in expected.items():
        cfg = build_config({"method": method})
        assert tuple(getattr(cfg.loss, w) for w in weights) == values, method
        assert flatten(cfg.model_dump())["loss.scl_weight"] == values[2]
        assert TrialConfig.model_validate(cfg.model_dump()) == cfg
    cfg = build_config({"method": "clip_cite"}, overrides=["loss.scl_weight=0.2", "loss.contrastive_weight=0.5"])
    assert (cfg.loss.scl_weight, cfg.loss.vld_weight, cfg.loss.contrastive_weight) == (0.2, 0.1, 0.5)


def test_an_objective_of_all_zeros_is_refused_as_a_problem_of_the_whole_config():
    with pytest.raises(ConfigError) as error:
        build_config({"method": "flyp", "loss.contrastive_weight": 0}, where="study.yaml")
    assert error.value.problems == [
        Problem("every loss.*_weight is 0, so flyp would train nothing; set one above 0", layer="study.yaml")
    ]
    assert build_config({"method": "zero_shot", "loss.ce_weight": 0}).loss.ce_weight == 0  # nothing to train


def test_each_problem_holds_its_layer_field_and_message():
    layers = [
        ("s.yaml: base", {"data.name": "digts", "trian.lr": 1}),
        ("s.yaml: arms[0] (a).config", {"lora": {"r": 0}, "train.lr": 0.1}),
        ("--set train.lr=-1", {"train.lr": -1}),
    ]
    with pytest.raises(ConfigError) as error:
        resolve_config(layers, "s.yaml: arms[0] (a)")
    assert error.value.problems == [
        Problem("unknown config key 'trian.lr' (did you mean 'train.lr'?)", layer="s.yaml: base"),
        Problem(
            "unknown dataset 'digts' (did you mean 'digits'?); valid: " + ", ".join(sorted(_datasets())),
            "data.name",
            "s.yaml: base",
        ),
        Problem("Input should be greater than 0", "lora.r", "s.yaml: arms[0] (a).config"),
        Problem("Input should be greater than 0", "train.lr", "--set train.lr=-1"),
    ]
    assert str(error.value).splitlines()[2] == "s.yaml: arms[0] (a).config: lora.r: Input should be greater than 0"


def _datasets() -> list[str]:
    from clipstudy.data import DATASETS

    return DATASETS.names()
