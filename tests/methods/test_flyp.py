"""FLYP: both towers train on the contrastive loss alone; prediction is the cosine to the class prompts."""

import pytest
import torch

from clipstudy.engine import Trainer


def test_contrastive_loss_alone_trains_both_towers(tiny_config):
    cfg = tiny_config("flyp", train__select="last")
    weights = (cfg.loss.ce_weight, cfg.loss.contrastive_weight, cfg.loss.scl_weight, cfg.loss.vld_weight)
    assert weights == (0.0, 1.0, 0.0, 0.0)
    trainer = Trainer(cfg)
    assert trainer.model.live_text
    assert [t.name for t in trainer.objective.terms] == ["contrastive"]
    visual = {n: p.detach().clone() for n, p in trainer.model.clip.visual.named_parameters()}
    text = {n: p.detach().clone() for n, p in trainer.model.clip.transformer.named_parameters()}
    result = trainer.fit()
    record = result.history[1]
    assert record["train/loss"] == pytest.approx(record["train/loss_contrastive"], rel=1e-6)
    assert record["train/loss_ce"] > 0  # logged, weight 0
    assert any(not torch.equal(p, visual[n]) for n, p in trainer.model.clip.visual.named_parameters())
    assert any(not torch.equal(p, text[n]) for n, p in trainer.model.clip.transformer.named_parameters())


def test_adding_cross_entropy_gives_the_dual_objective(tiny_config):
    result = Trainer(tiny_config("flyp", loss__ce_weight=0.5)).fit()
    record = result.history[1]
    total = 0.5 * record["train/loss_ce"] + record["train/loss_contrastive"]
    assert record["train/loss"] == pytest.approx(total, rel=1e-5)
