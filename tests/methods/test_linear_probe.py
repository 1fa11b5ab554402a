import pytest
import torch

import clipstudy.engine.trainer as trainer_module
from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError


def test_features_are_cached_and_reused_across_trials(tiny_config, tmp_path):
    from clipstudy.data.feature_cache import FeatureCache

    cfg = tiny_config("linear_probe", train__epochs=2)
    first = Trainer(cfg)
    assert first.cached
    cache = FeatureCache(cfg.data.cache_dir)
    files = sorted(p.name for p in cache.root.glob("*.safetensors"))
    assert len(files) == 3  # train, val, test
    second = Trainer(tiny_config("linear_probe", train__lr=0.1))
    for split in ("train", "val", "test"):
        torch.testing.assert_close(first.sources[split][0], second.sources[split][0], rtol=0, atol=0)
    assert sorted(p.name for p in cache.root.glob("*.safetensors")) == files


def test_augmentation_disables_the_cache(tiny_config):
    assert not Trainer(tiny_config("linear_probe", augment__hflip=0.5)).cached


def test_cached_probe_equals_on_the_fly_probe(tiny_config, monkeypatch):
    cfg = tiny_config("linear_probe", train__epochs=2, head__dropout=0.0)
    cached = Trainer(cfg).fit()
    monkeypatch.setattr(trainer_module, "uses_cached_features", lambda method, cfg: False)
    live_trainer = Trainer(cfg)
    assert not live_trainer.cached
    live = live_trainer.fit()
    for a, b in zip(cached.history, live.history, strict=True):
        assert a["val/acc"] == pytest.approx(b["val/acc"], abs=1e-6)
        assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-4)
    for name in cached.weights:
        torch.testing.assert_close(cached.weights[name], live.weights[name], rtol=1e-4, atol=1e-5)


def test_logreg_protocol_selects_c_on_validation(tiny_config):
    from sklearn.linear_model import LogisticRegression

    cfg = tiny_config("linear_probe", probe__solver="logreg", probe__c_grid=[0.001, 1.0, 100.0])
    trainer = Trainer(cfg)
    result = trainer.fit()
    record = result.history[1]
    sweep = {c: record[f"probe/val_acc_C_{c:g}"] for c in (0.001, 1.0, 100.0)}
    assert record["probe/best_C"] == max(sweep, key=sweep.get)
    assert record["val/acc"] == pytest.approx(max(sweep.values()))
    x, y = (t.cpu().numpy() for t in trainer.sources["train"])
    reference = LogisticRegression(C=record["probe/best_C"], max_iter=1000).fit(x, y)
    torch.testing.assert_close(
        trainer.model.head.fc.weight.detach(),
        torch.as_tensor(reference.coef_, dtype=torch.float32),
        rtol=1e-4,
        atol=1e-4,
    )


def test_logreg_needs_fixed_features_and_a_linear_head(tiny_config):
    with pytest.raises(ConfigError, match=r"head\.kind: linear"):
        Trainer(tiny_config("linear_probe", probe__solver="logreg", head__kind="mlp"))
    with pytest.raises(ConfigError, match="augmentation off"):
        Trainer(tiny_config("linear_probe", probe__solver="logreg", augment__hflip=0.5))


@pytest.mark.parametrize(
    "change",
    [
        {"train__precision": "bf16"},
        {"model__interpolation": "bilinear"},
        {"model__weights_dtype": "bf16"},
        {"train__seed": 1},  # random weights: another init
    ],
    ids=lambda change: next(iter(change)),
)
def test_features_computed_another_way_are_another_cache_entry(change, tiny_config):
    """bf16 features must not be reused by an fp32 run, nor bicubic ones by a bilinear run."""
    base = Trainer(tiny_config("linear_probe"))
    other = Trainer(tiny_config("linear_probe", **change))
    assert base.feature_key("val") != other.feature_key("val")
    if "train__precision" in change:  # why it matters: bf16 features are not the fp32 ones
        assert not torch.equal(base.sources["val"][0], other.sources["val"][0])


def test_the_feature_key_names_precision_and_preprocessing(tiny_config):
    trainer = Trainer(tiny_config("linear_probe", model__interpolation="bilinear"))
    key = trainer.feature_key("test")
    assert key["precision"] == "fp32" and key["preprocess"]["interpolation"] == "bilinear"
    assert key["preprocess"]["mean"] == list(trainer.built.mean) and key["activation"] in ("gelu", "quick_gelu")


def test_features_of_a_weights_file_are_keyed_by_the_file_the_tag_or_path_resolved_to(tiny_config, tmp_path):
    """New weights under the same name (a packaged tag after reinstall, a file overwritten) are another entry."""
    import os

    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    import open_clip

    save_file({k: v.contiguous() for k, v in open_clip.create_model("clipstudy-tiny").state_dict().items()}, path)
    first = Trainer(tiny_config("linear_probe", model__pretrained=str(path))).feature_key("val")
    assert first["weights_file"][0] == str(path)
    os.utime(path, ns=(1, 1))
    assert Trainer(tiny_config("linear_probe", model__pretrained=str(path))).feature_key("val") != first
