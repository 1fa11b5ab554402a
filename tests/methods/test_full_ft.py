import pytest

from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError


def groups_by_name(trainer):
    return {g["name"]: g for g in trainer.optimizer.param_groups}


def test_differential_learning_rates_land_in_the_right_groups(tiny_config):
    trainer = Trainer(tiny_config("full_ft", train__backbone_lr=5e-7, train__head_lr=5e-4, train__scheduler="constant"))
    groups = groups_by_name(trainer)
    head_ids = {id(p) for p in trainer.model.head.parameters()}
    visual_ids = {id(p) for p in trainer.model.clip.visual.parameters()}
    for name, group in groups.items():
        ids = {id(p) for p in group["params"]}
        if name.startswith("head"):
            assert ids <= head_ids and group["lr"] == 5e-4
        else:
            assert name.startswith("backbone.") and ids <= visual_ids and group["lr"] == 5e-7
    covered = {id(p) for g in groups.values() for p in g["params"]}
    assert covered == head_ids | visual_ids


def test_layer_decay_scales_each_block(tiny_config):
    trainer = Trainer(
        tiny_config("full_ft", train__backbone_lr=1.0, train__layer_decay=0.5, train__scheduler="constant")
    )
    groups = groups_by_name(trainer)
    blocks = len(trainer.model.clip.visual.transformer.resblocks)  # 2 in the tiny model
    assert groups["backbone.layer0"]["lr"] == 0.5 ** (blocks + 1)
    assert groups["backbone.layer1"]["lr"] == 0.5**blocks
    assert groups[f"backbone.layer{blocks + 1}"]["lr"] == 1.0
    first_block = trainer.model.clip.visual.transformer.resblocks[0]
    assert {id(p) for p in first_block.parameters()} <= {
        id(p) for n, g in groups.items() if n.startswith("backbone.layer1") for p in g["params"]
    }


def test_frozen_first_blocks(tiny_config):
    trainer = Trainer(tiny_config("full_ft", train__freeze_blocks=1))
    visual = trainer.model.clip.visual
    assert not visual.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in visual.transformer.resblocks[0].parameters())
    assert all(p.requires_grad for p in visual.transformer.resblocks[1].parameters())
    with pytest.raises(ConfigError, match="only 2 blocks"):
        Trainer(tiny_config("full_ft", train__freeze_blocks=5))


def test_text_tower_stays_frozen(tiny_config):
    trainer = Trainer(tiny_config("full_ft"))
    assert not any(p.requires_grad for p in trainer.model.clip.transformer.parameters())
