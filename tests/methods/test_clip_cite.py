"""CLIP-CITE: both towers train on DVA + λ·SCL + η·VLD, distilled from a frozen copy of the original model."""

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.models.heads import TextHead
from tests.conftest import interrupted_after_first_epoch


def test_defaults_are_004s_and_searchable(tiny_config):
    cfg = tiny_config("clip_cite")
    assert (cfg.loss.ce_weight, cfg.loss.scl_weight, cfg.loss.vld_weight, cfg.loss.contrastive_weight) == (
        1.0,
        0.7,
        0.1,
        0.0,
    )
    cfg = tiny_config("clip_cite", loss__scl_weight=0.3, loss__vld_weight=0.0)
    assert (cfg.loss.scl_weight, cfg.loss.vld_weight) == (0.3, 0.0)


def test_both_towers_train_through_a_live_text_classifier(tiny_config):
    trainer = Trainer(tiny_config("clip_cite"))
    model = trainer.model
    assert model.live_text and isinstance(model.head, TextHead)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"clip.logit_scale", "head.weight"}  # the classifier is the text tower's live output
    assert {f"clip.visual.{n}" for n, _ in model.clip.visual.named_parameters()} <= trainable
    assert {f"clip.transformer.{n}" for n, _ in model.clip.transformer.named_parameters()} <= trainable
    assert {"clip.token_embedding.weight", "clip.text_projection"} <= trainable


def test_teacher_is_a_frozen_copy_of_the_original_and_vld_starts_at_zero(tiny_config):
    trainer = Trainer(tiny_config("clip_cite", train__lr=1e-2))
    vld = next(t for t in trainer.objective.terms if t.name == "vld")
    teacher, student = vld.compute.teacher.clip, trainer.model.clip
    assert all(not p.requires_grad for p in teacher.parameters())
    before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    for (name, p), q in zip(student.named_parameters(), teacher.parameters(), strict=True):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr(), name
    x, y = next(trainer._train_batches(torch.Generator().manual_seed(0)))
    trainer.model.train()
    _, terms = trainer.objective.forward(trainer.model, x, y)
    assert terms["vld"].item() == pytest.approx(0.0, abs=1e-7)  # the student still is the teacher
    result = trainer.fit()
    assert all(torch.equal(p, before[n]) for n, p in teacher.named_parameters())
    assert any(not torch.equal(p, before[n]) for n, p in student.named_parameters())
    assert result.history[-1]["train/loss_vld"] > 0


def test_each_term_is_logged_and_the_loss_is_their_weighted_sum(tiny_config):
    result = Trainer(tiny_config("clip_cite", train__epochs=2)).fit()
    for record in result.history[1:]:
        total = record["train/loss_ce"] + 0.7 * record["train/loss_scl"] + 0.1 * record["train/loss_vld"]
        assert record["train/loss"] == pytest.approx(total, rel=1e-5)
        assert record["train/loss_scl"] > 0


def test_resumed_run_equals_the_uninterrupted_one(tiny_config, tmp_path):
    cfg = tiny_config("clip_cite", train__epochs=2, tokens__keep_ratio=0.5, augment__hflip=0.5)
    straight = Trainer(cfg).fit()

    resumed = Trainer(cfg, resume_from=interrupted_after_first_epoch(cfg, tmp_path)).fit()
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if "loss" in k or "acc" in k} == {
            k: v for k, v in b.items() if "loss" in k or "acc" in k
        }
    for name, weight in straight.weights.items():
        assert torch.equal(weight, resumed.weights[name]), name
