"""The classifier's parameter counts by part: what `trainable_params` and `total_params` are made of."""

from __future__ import annotations

from clipstudy.engine import Trainer


def parts_of(trainer: Trainer) -> dict[str, tuple[int, int, bool]]:
    return {part.name: (part.trainable, part.total, part.counted) for part in trainer.model.param_parts()}


def test_a_frozen_text_tower_is_listed_but_not_counted_in_the_total(tiny_config):
    trainer = Trainer(tiny_config("lora", lora__targets=["q", "v"], lora__r=4), prepare=False)
    parts = parts_of(trainer)
    clip = trainer.model.clip
    visual_total = sum(p.numel() for p in clip.visual.parameters())
    adapters = sum(p.numel() for n, p in clip.visual.named_parameters() if "lora_" in n)
    assert adapters > 0
    assert parts["image tower"] == (adapters, visual_total, True)
    text_trainable, text_total, text_counted = parts["text tower"]
    assert (text_trainable, text_counted) == (0, False) and text_total > 0
    assert parts["logit scale/bias"] == (0, 1, False)
    head = sum(p.numel() for p in trainer.model.head.parameters())
    assert parts["head"] == (head, head, True)
    assert trainer.model.param_counts() == (adapters + head, visual_total + head)
    assert (trainer.trainable_params, trainer.total_params) == trainer.model.param_counts()


def test_a_live_text_tower_counts_in_the_total(tiny_config):
    cfg = tiny_config("lora", lora__towers=["vision", "text"], head__kind="text", lora__r=4)
    trainer = Trainer(cfg, prepare=False)
    parts = parts_of(trainer)
    text_trainable, text_total, text_counted = parts["text tower"]
    assert text_counted and text_trainable > 0
    image_total, head_total = parts["image tower"][1], parts["head"][1]
    trainable, total = trainer.model.param_counts()
    assert total == image_total + text_total + head_total
    assert trainable == parts["image tower"][0] + text_trainable  # the text head's weights are computed, not trained
