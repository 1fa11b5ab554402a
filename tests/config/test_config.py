import subprocess
import sys

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


def test_protocol_keys_are_config_keys():
    keys = set(config_keys())
    assert {"data.shots", "data.shot_seed", "data.classes", "eval.retention", "eval.retention_per_class"} <= keys
    cfg = build_config({"data": {"shots": 16, "shot_seed": 2, "classes": "base"}, "eval.retention": ["imagenet"]})
    assert (cfg.data.shots, cfg.data.shot_seed, cfg.data.classes, cfg.eval.retention) == (16, 2, "base", ["imagenet"])


def test_loss_weights_default_per_method_and_stay_numbers_in_the_record():
    assert {"loss.scl_weight", "loss.vld_weight", "wise.alphas", "tokens.keep_ratio"} <= set(config_keys())
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


def test_wise_alphas_are_sorted_and_need_distinct_steps():
    assert TrialConfig().wise.alphas == [i / 10 for i in range(11)]
    assert build_config({"wise.alphas": [1.0, 0.5, 0.0, 0.5]}).wise.alphas == [0.0, 0.5, 1.0]
    with pytest.raises(ConfigError, match=r"at least 0\.01"):
        build_config({"wise.alphas": [0.5, 0.501]})
    with pytest.raises(ConfigError, match=r"wise\.alphas"):
        build_config({"wise.alphas": [1.5]})


def test_token_keep_ratio_is_a_share():
    with pytest.raises(ConfigError, match=r"tokens\.keep_ratio"):
        build_config({"tokens.keep_ratio": 0.0})
    with pytest.raises(ConfigError, match=r"tokens\.saliency"):
        build_config({"tokens.saliency": "random"})


def test_architecture_names_are_checked_without_importing_open_clip():
    """`clipstudy validate` stays fast: open_clip takes seconds to import."""
    code = (
        "import sys\n"
        "from clipstudy.config import build_config\n"
        "for arch in ('ViT-B-32', 'ViT-L-14-336', 'clipstudy-tiny-siglip', 'ViT-SO400M-14-SigLIP'):\n"
        "    assert build_config({'model.arch': arch}).model.arch == arch\n"
        "assert 'open_clip' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_architecture_names_match_open_clips_own_list():
    import open_clip

    from clipstudy.models.build import list_architectures
    from clipstudy.models.names import open_clip_architectures, torchvision_architectures

    assert set(open_clip_architectures()) == set(open_clip.list_models())
    assert set(list_architectures()) == set(open_clip.list_models()) | set(torchvision_architectures())
