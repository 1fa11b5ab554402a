"""Every registered method gets these checks by being registered."""

import math

import pytest
import torch

from clipstudy.config import TrialConfig, config_keys
from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError
from clipstudy.methods import METHODS, Method

FINITE_KEYS = ("val/loss", "val/acc", "epoch_time_s", "peak_mem_mb")


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_one_epoch_with_finite_metrics(name, tiny_config):
    trainer = Trainer(tiny_config(name))
    result = trainer.fit()
    method = METHODS.get(name)
    epochs = [h["epoch"] for h in result.history]
    assert epochs == ([0, 1] if method.trains else [0])
    for record in result.history:
        for key in FINITE_KEYS:
            assert math.isfinite(record[key]), (key, record)
    if method.trains:
        last = result.history[-1]
        for key in ("train/loss", "train/acc", "lr", "throughput_img_s"):
            assert math.isfinite(last[key]) and last[key] >= 0, key
        assert result.metrics["trainable_params"] > 0
    else:
        assert result.metrics["trainable_params"] == 0
    assert 0 <= result.metrics["trainable_params"] <= result.metrics["total_params"]
    for key in ("test/acc", "test/acc5", "test/macro_f1"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert result.metrics["test/acc5"] >= result.metrics["test/acc"]
    assert list(result.per_class.columns) == ["class", "precision", "recall", "f1", "support"]
    assert result.confusion.sum() == len(trainer.data.test)
    assert set(result.weights) == {n for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_only_what_it_says(name, tiny_config):
    trainer = Trainer(tiny_config(name))
    method = METHODS.get(name)()
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    if not method.trains:
        assert trainable == set()
        return
    groups = method.param_groups(trainer.model, trainer.cfg)
    in_groups = {id(p) for g in groups for p in g.params}
    assert in_groups == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    if method.frozen_backbone:
        assert all(n.startswith("head.") for n in trainable)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_is_listed_with_a_description(name):
    assert METHODS.get(name).description


def test_training_changes_only_trainable_weights(tiny_config):
    trainer = Trainer(tiny_config("lora"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()
    for name, param in trainer.model.named_parameters():
        if not param.requires_grad:
            assert torch.equal(param, before[name]), name


@pytest.mark.parametrize("name", METHODS.names())
def test_method_reads_only_config_sections_and_keys_that_exist(name):
    keys = set(config_keys())
    sections = {key.split(".")[0] for key in keys}
    assert [entry for entry in METHODS.get(name).config_reads() if entry not in keys | sections] == []


@pytest.mark.parametrize("name", METHODS.names())
def test_a_config_built_without_resolution_trains_with_the_methods_defaults(name, tiny_config):
    resolved = tiny_config(name)
    direct = TrialConfig.model_validate({**resolved.model_dump(), "loss": {}})  # loss weights unset
    assert direct.loss.ce_weight is None
    assert METHODS.get(name).with_defaults(direct) == resolved
    built, again = Trainer(direct).objective, Trainer(resolved).objective
    assert (built.ce_weight, [(t.name, t.weight) for t in built.terms]) == (
        again.ce_weight,
        [(t.name, t.weight) for t in again.terms],
    )


def test_methods_named_in_messages_come_from_the_registry(tiny_config, monkeypatch):
    class Newcomer(Method):
        name = "newcomer"
        description = "trains its towers"

    monkeypatch.setitem(METHODS._items, Newcomer.name, Newcomer)
    with pytest.raises(ConfigError) as error:
        Trainer(tiny_config("linear_probe", loss__contrastive_weight=1.0))
    assert "use a method that trains them (clip_cite, flyp, full_ft, lora, newcomer)" in str(error.value)
