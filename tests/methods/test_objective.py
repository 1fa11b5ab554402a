"""Composing loss terms and token masking with any method whose towers train; clear errors otherwise."""

import pytest
import torch
import torch.nn.functional as F

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


TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a {} in the wild.", "a close-up photo of the {}."]
"""Four templates for the tiny data's four classes (its own single template would make every mode alike)."""


def encoded_prompts(model) -> list[tuple[int, int]]:
    """Record (prompts, tokens) of each batch the text tower encodes."""
    calls: list[tuple[int, int]] = []
    model.clip.token_embedding.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    return calls


def live_text_trainer(tiny_config, method: str = "lora", **overrides) -> Trainer:
    if method == "lora":
        overrides = {"lora__towers": ["vision", "text"], "head__kind": "text", **overrides}
    return Trainer(tiny_config(method, prompts__custom=TEMPLATES, **overrides))


@pytest.mark.parametrize("method", ["lora", "flyp", "clip_cite"])
def test_a_training_step_encodes_one_prompt_per_class_and_evaluation_all(method, tiny_config):
    trainer = live_text_trainer(tiny_config, method)
    calls = encoded_prompts(trainer.model)
    x, y = next(trainer._train_batches(torch.Generator().manual_seed(0)))
    trainer.model.train()
    with torch.no_grad():
        trainer._forward(x, y)
    assert [n for n, _ in calls] == [4]  # C, not C x T = 16
    assert calls[0][1] < 20  # cut to the longest EOT position, not 77 tokens
    calls.clear()
    trainer.model.eval()
    with torch.no_grad():
        trainer.model(x)
        trainer.model(x)  # the evaluation pass encodes its ensemble once
    assert [n for n, _ in calls] == [16]


def test_drawn_templates_differ_between_steps_and_repeat_for_the_seed(tiny_config):
    def draws(seed: int) -> list[list[int]]:
        trainer = live_text_trainer(tiny_config, train__seed=seed)
        torch.manual_seed(0)
        trainer.model.train()
        x, y = next(trainer._train_batches(torch.Generator().manual_seed(0)))
        out = []
        for _ in range(5):
            with torch.no_grad():
                trainer._forward(x, y)
            out.append(trainer.model.live_prompts.drawn.tolist())
        return out

    first = draws(0)
    assert len({tuple(d) for d in first}) > 1
    assert draws(0) == first and draws(1) != first


def test_first_and_all_train_on_the_first_template_or_every_one(tiny_config):
    for mode, count in (("first", 4), ("all", 16)):
        trainer = live_text_trainer(tiny_config, prompts__train_templates=mode)
        model = trainer.model
        calls = encoded_prompts(model)
        model.train()
        with torch.no_grad():
            text = model.class_weights()
            assert [n for n, _ in calls] == [count], mode
            model.eval()
            ensemble = model.class_weights()
        if mode == "first":
            first = F.normalize(model.clip.encode_text(model.live_prompts.tokens[:, 0]), dim=-1)
            torch.testing.assert_close(text, first, rtol=0, atol=1e-5)
            assert not torch.allclose(text, ensemble, atol=1e-4)
        else:
            torch.testing.assert_close(text, ensemble, rtol=0, atol=1e-6)


def test_the_step_text_is_its_prompt_embedding_and_vld_compares_the_same_templates(tiny_config):
    trainer = live_text_trainer(tiny_config, "clip_cite")
    model, objective = trainer.model, trainer.objective
    x, y = next(trainer._train_batches(torch.Generator().manual_seed(0)))
    model.train()
    with torch.no_grad():
        text = objective.class_text(model)
        drawn = model.live_prompts.drawn
        single = model.clip.encode_text(model.live_prompts.tokens[torch.arange(4), drawn])
        torch.testing.assert_close(text, F.normalize(single, dim=-1), rtol=0, atol=1e-5)
        _, terms = objective.forward(model, x, y)
    assert terms["vld"].item() == pytest.approx(0.0, abs=1e-6)  # the student still is the teacher, same prompts
    teacher = next(t.compute for t in objective.terms if t.name == "vld").teacher
    assert not torch.allclose(teacher.step_text(model.live_prompts), teacher.class_text, atol=1e-4)


def test_lora_on_both_towers_trains_with_sampled_templates(tiny_config):
    result = live_text_trainer(tiny_config, train__epochs=2, train__lr=1e-2).fit()
    assert all(torch.isfinite(torch.tensor(r["train/loss"])) for r in result.history[1:])
    assert any("lora_" in name and ".transformer." in name for name in result.weights)


def test_a_resumed_trial_draws_the_same_templates(tiny_config, tmp_path):
    from tests.conftest import interrupted_after_first_epoch

    cfg = tiny_config("clip_cite", prompts__custom=TEMPLATES, train__epochs=2)
    straight = Trainer(cfg).fit()
    resumed = Trainer(cfg, resume_from=interrupted_after_first_epoch(cfg, tmp_path)).fit()
    assert [r["train/loss"] for r in straight.history[1:]] == [r["train/loss"] for r in resumed.history[1:]]
    for name, weight in straight.weights.items():
        assert torch.equal(weight, resumed.weights[name]), name
