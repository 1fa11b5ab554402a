import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError
from clipstudy.models.lora import count_lora_params


def test_lora_trains_adapters_and_head_only(tiny_config):
    trainer = Trainer(tiny_config("lora", lora__targets=["q", "v"]))
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("head.") for n in trainable)
    head = sum(p.numel() for p in trainer.model.head.parameters())
    assert trainer.trainable_params == count_lora_params(trainer.model.clip) + head


def test_head_rate_is_separate(tiny_config):
    trainer = Trainer(tiny_config("lora", train__lr=1e-3, train__head_lr=1e-2, train__scheduler="constant"))
    rates = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert rates["adapters"] == 1e-3 and rates["head"] == 1e-2


def test_text_tower_lora_needs_the_text_head(tiny_config):
    with pytest.raises(ConfigError, match=r"head\.kind: text"):
        Trainer(tiny_config("lora", lora__towers=["vision", "text"]))


def test_text_tower_lora_trains_through_live_class_embeddings(tiny_config):
    trainer = Trainer(
        tiny_config("lora", lora__towers=["text"], head__kind="text", train__lr=1e-2, train__select="last")
    )
    assert trainer.model.live_text
    text_adapters = {
        n: p.detach().clone() for n, p in trainer.model.clip.transformer.named_parameters() if "lora_B" in n
    }
    assert text_adapters and all(torch.count_nonzero(p) == 0 for p in text_adapters.values())
    trainer.fit()
    changed = [
        n
        for n, p in trainer.model.clip.transformer.named_parameters()
        if n in text_adapters and not torch.equal(p, text_adapters[n])
    ]
    assert changed
    assert not trainer.model.head.weight.requires_grad  # live class embeddings replace it
    _, total = trainer.model.param_counts()
    assert total > sum(p.numel() for p in trainer.model.clip.visual.parameters())
