"""Composing loss terms and token masking with any method whose towers train; clear errors otherwise."""

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError
from clipstudy.models.token_keep import SalientTokenKeep


@pytest.mark.parametrize("method", ["full_ft", "lora", "linear_probe", "zero_shot"])
def test_existing_methods_keep_the_plain_cross_entropy_step(method, tiny_config):
    trainer = Trainer(tiny_config(method))
    assert trainer.objective.plain
    assert not isinstance(trainer.model.clip.visual.patch_dropout, SalientTokenKeep)


def test_dual_loss_on_full_ft_uses_the_frozen_zero_shot_texts(tiny_config):
    trainer = Trainer(tiny_config("full_ft", loss__contrastive_weight=0.5, train__select="last"))
    text_before = {n: p.detach().clone() for n, p in trainer.model.clip.transformer.named_parameters()}
    result = trainer.fit()
    record = result.history[1]
    total = record["train/loss_ce"] + 0.5 * record["train/loss_contrastive"]
    assert record["train/loss"] == pytest.approx(total, rel=1e-5)
    expected_text = trainer.objective.zero_shot_text()
    torch.testing.assert_close(trainer.objective._fixed_text, expected_text, rtol=0, atol=0)
    assert all(torch.equal(p, text_before[n]) for n, p in trainer.model.clip.transformer.named_parameters())


def test_scl_and_vld_compose_with_lora(tiny_config):
    trainer = Trainer(tiny_config("lora", loss__scl_weight=0.7, loss__vld_weight=0.1))
    assert [t.name for t in trainer.objective.terms] == ["scl", "vld"]
    teacher = trainer.objective.terms[1].compute.teacher.clip
    assert not any("lora_" in n for n, _ in teacher.named_parameters())  # copied before the adapters went in
    record = trainer.fit().history[1]
    assert {"train/loss_ce", "train/loss_scl", "train/loss_vld"} <= set(record)


def test_token_masking_trains_and_evaluates_on_all_tokens(tiny_config):
    trainer = Trainer(tiny_config("full_ft", tokens__keep_ratio=0.5, loss__contrastive_weight=1.0))
    keep = trainer.model.clip.visual.patch_dropout
    assert isinstance(keep, SalientTokenKeep) and keep.keep_ratio == 0.5 and keep.saliency == "attention"
    result = trainer.fit()
    assert result.history[1]["train/loss"] > 0
    trainer.model.eval()
    x = next(trainer.evaluator.batches(trainer.sources["val"][0]))
    lengths = []
    trainer.model.clip.visual.ln_pre.register_forward_hook(lambda m, args, out: lengths.append(out.shape[1]) and None)
    with torch.no_grad():
        trainer.model(x)
    assert lengths == [1 + 16]


@pytest.mark.parametrize(
    ("method", "overrides", "message"),
    [
        ("linear_probe", {"loss__scl_weight": 0.5}, "keeps frozen"),
        ("linear_probe", {"tokens__keep_ratio": 0.5}, "tokens.keep_ratio"),
        ("clip_cite", {"augment__mixup_alpha": 0.2}, "Mixup/CutMix"),
    ],
)
def test_combinations_that_cannot_work_fail_with_the_fix(method, overrides, message, tiny_config):
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_config(method, **overrides))


def test_an_objective_of_zeros_is_refused_at_validation(tiny_config):
    with pytest.raises(ConfigError, match=r"every loss\.\*_weight is 0"):
        tiny_config("flyp", loss__contrastive_weight=0.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"loss__contrastive_weight": 1.0}, "has no text tower"), ({"tokens__keep_ratio": 0.5}, "open_clip ViT")],
)
def test_an_image_only_backbone_refuses_text_terms_and_token_masking(overrides, message, tiny_config):
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_config("full_ft", model__arch="torchvision/resnet18", **overrides))
