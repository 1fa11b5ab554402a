import pytest

from clipstudy.config import TrialConfig, build_config, config_keys, expand, flatten, parse_override
from clipstudy.errors import ConfigError


def test_defaults_come_from_one_place():
    cfg = build_config({})
    assert cfg == TrialConfig()
    assert cfg.train.lr == 1e-3 and cfg.lora.targets == ["q", "v"]


def test_contract_keys_exist():
    keys = set(config_keys())
    for key in [
        "model.arch",
        "model.pretrained",
        "data.name",
        "data.root",
        "data.download",
        "data.val_fraction",
        "head.kind",
        "head.dropout",
        "head.hidden",
        "lora.r",
        "lora.alpha",
        "lora.dropout",
        "lora.targets",
        "lora.towers",
        "train.epochs",
        "train.batch_size",
        "train.optimizer",
        "train.lr",
        "train.backbone_lr",
        "train.head_lr",
        "train.layer_decay",
        "train.weight_decay",
        "train.scheduler",
        "train.warmup_epochs",
        "train.label_smoothing",
        "train.precision",
        "train.seed",
        "augment.mixup_alpha",
        "augment.cutmix_alpha",
        "augment.mix_prob",
    ]:
        assert key in keys, key


def test_overrides_are_yaml_values():
    assert parse_override("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_override("lora.targets=[q,v]") == ("lora.targets", ["q", "v"])
    cfg = build_config({"method": "lora"}, overrides=["train.lr=3e-4", "lora.targets=[q,k]", "lora.r=4"])
    assert (cfg.train.lr, cfg.lora.targets, cfg.lora.r) == (3e-4, ["q", "k"], 4)


def test_layers_merge_nested_and_dotted():
    cfg = build_config({"train": {"lr": 0.1, "epochs": 3}}, {"train.lr": 0.2})
    assert (cfg.train.lr, cfg.train.epochs) == (0.2, 3)


def test_flatten_expand_roundtrip():
    tree = TrialConfig().model_dump()
    assert expand(flatten(tree)) == tree


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"train.lrr": 1}, "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ({"trian": {"lr": 1}}, "unknown config key 'trian.lr'"),
        ({"lora.r": 0}, "lora.r: Input should be greater than 0"),
        ({"method": "lorra"}, "unknown method 'lorra' (did you mean 'lora'?); valid: full_ft, linear_probe, lora"),
        ({"lora.targets": ["q", "x"]}, "lora.targets.1"),
        ({"augment.crop_scale": [0.9, 0.5]}, "low must not exceed high"),
        ({"train": 3}, "'train' is a section"),
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
