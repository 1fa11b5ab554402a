"""Exact truncation of causal text towers, and the prompts a training step encodes (`ClassPrompts`)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from clipstudy.config import LoraConfig, ModelConfig
from clipstudy.models import TINY_SIGLIP_ARCH, apply_lora, build_clip
from clipstudy.models.heads import tokenize_prompts
from clipstudy.models.text import ClassPrompts, causal_text, class_embeddings, encode_prompts

PROMPTS = [
    "a photo of a cat.",
    "a blurry photo of the big aquarium fish, a type of pet that lives in water.",
    "itap of a dog.",
]
CLASSES = ["apple", "aquarium fish", "baby", "bear"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}.", "a sculpture of a {}.", "itap of my {}."]


def build(arch: str):
    torch.manual_seed(0)
    return build_clip(ModelConfig(arch=arch, pretrained="none"))


@pytest.fixture(scope="module")
def tiny():
    return build("clipstudy-tiny")


def lengths_seen(model) -> list[int]:
    """Record the sequence length each call of the text tower's first block sees."""
    seen: list[int] = []
    blocks = (model.text if hasattr(model, "text") else model).transformer.resblocks
    blocks[0].register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    return seen


def longest_eot(tokens: torch.Tensor) -> int:
    return int(tokens.argmax(dim=-1).max()) + 1


@pytest.mark.parametrize("arch", ["clipstudy-tiny", "ViT-B-32"])
def test_truncated_prompts_give_the_full_length_features(arch):
    built = build(arch)
    model = copy.deepcopy(built.model)
    tokens = built.tokenizer(PROMPTS)
    seen = lengths_seen(model)
    with torch.no_grad():
        full = model.encode_text(tokens)
        cut = encode_prompts(model, tokens)
    assert tokens.shape[1] == 77 and seen == [77, longest_eot(tokens)] and seen[1] < 30
    torch.testing.assert_close(cut, full, rtol=0, atol=1e-5)
    assert model.positional_embedding.shape[0] == 77 and model.attn_mask.shape == (77, 77)  # restored


def test_truncation_is_exact_with_text_lora_and_its_gradients_reach_every_weight(tiny):
    model = copy.deepcopy(tiny.model)
    apply_lora(model, LoraConfig(towers=["text"], targets=["q", "v", "fc1"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)  # adapters that change the output
    model.positional_embedding.requires_grad_(True)
    tokens = tiny.tokenizer(PROMPTS)
    seen = lengths_seen(model)

    def grads(encode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        out = encode()
        out.pow(2).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full, full_grads = grads(lambda: model.encode_text(tokens))
    cut, cut_grads = grads(lambda: encode_prompts(model, tokens))
    assert seen == [77, longest_eot(tokens)]
    torch.testing.assert_close(cut, full, rtol=0, atol=1e-5)
    assert set(cut_grads) == set(full_grads) and any("lora_A" in n for n in cut_grads)
    for name, grad in full_grads.items():  # fp32 sums in another order: equal up to rounding
        torch.testing.assert_close(cut_grads[name], grad, rtol=1e-4, atol=1e-5 * float(grad.abs().max()), msg=name)
    unused = full_grads["positional_embedding"][longest_eot(tokens) :]
    assert torch.count_nonzero(unused) == 0 and torch.count_nonzero(cut_grads["positional_embedding"]) > 0


def test_zero_shot_weights_equal_the_untruncated_ones(tiny):
    tokens = tokenize_prompts(tiny.tokenizer, CLASSES, TEMPLATES)
    with torch.no_grad():
        old = class_embeddings(tiny.model.encode_text, tokens, len(CLASSES))  # a callable: as it is
        new = class_embeddings(tiny.model, tokens, len(CLASSES), chunk=5)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-5)


def test_siglip_bidirectional_text_tower_keeps_the_full_length():
    built = build(TINY_SIGLIP_ARCH)
    model = built.model
    assert causal_text(model) is None
    tokens = built.tokenizer(PROMPTS)
    seen = lengths_seen(model)
    with torch.no_grad():
        torch.testing.assert_close(encode_prompts(model, tokens), model.encode_text(tokens), rtol=0, atol=0)
    assert seen == [tokens.shape[1]] * 2


def test_towers_that_are_not_causal_or_pool_the_last_token_are_left_alone(tiny):
    tokens = tiny.tokenizer(PROMPTS)
    bidirectional = copy.deepcopy(tiny.model)
    bidirectional.attn_mask = torch.zeros(77, 77)
    no_mask = copy.deepcopy(tiny.model)
    no_mask.attn_mask = None
    last = copy.deepcopy(tiny.model)
    last.text_pool_type = "last"
    assert causal_text(bidirectional) is None and causal_text(no_mask) is None
    assert causal_text(last) is not None and causal_text(tiny.model) is not None
    for model in (bidirectional, no_mask, last):
        seen = lengths_seen(model)
        with torch.no_grad():
            torch.testing.assert_close(encode_prompts(model, tokens), model.encode_text(tokens), rtol=0, atol=0)
        assert seen == [77, 77]


def prompts(tiny, mode: str, seed: int = 0) -> ClassPrompts:
    return ClassPrompts(tokenize_prompts(tiny.tokenizer, CLASSES, TEMPLATES), len(CLASSES), mode, seed)


def test_sample_draws_one_template_per_class_each_step_repeatably(tiny):
    torch.manual_seed(0)
    bank = prompts(tiny, "sample", seed=3).train()
    draws = [bank.step_tokens() for _ in range(6)]
    assert all(step.shape == (len(CLASSES), 77) for step in draws)
    torch.manual_seed(0)
    again = prompts(tiny, "sample", seed=3).train()
    repeat = [again.step_tokens() for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(draws, repeat, strict=True))
    assert len({tuple(map(tuple, step.tolist())) for step in draws}) > 1  # steps differ
    for step in draws:  # each row is one of its own class's prompts
        for c, row in enumerate(step):
            assert any(torch.equal(row, bank.tokens[c, t]) for t in range(len(TEMPLATES)))
    torch.manual_seed(0)
    other = prompts(tiny, "sample", seed=4).train()
    assert not all(torch.equal(a, other.step_tokens()) for a in draws)


def test_first_and_all_and_evaluation(tiny):
    first = prompts(tiny, "first")
    assert torch.equal(first.step_tokens(), first.tokens[:, 0]) and first.drawn.tolist() == [0] * len(CLASSES)
    every = prompts(tiny, "all")
    assert every.step_tokens().shape == (len(CLASSES) * len(TEMPLATES), 77) and every.drawn is None
    with torch.no_grad():
        ensemble = class_embeddings(tiny.model, every.all_tokens(), len(CLASSES))
        torch.testing.assert_close(first.embeddings(tiny.model, training=False), ensemble, rtol=0, atol=0)
        single = F.normalize(tiny.model.encode_text(first.tokens[:, 0]), dim=-1)
        torch.testing.assert_close(first.embeddings(tiny.model, training=True), single, rtol=0, atol=1e-5)


def test_pool_follows_the_last_draw(tiny):
    bank = prompts(tiny, "sample").train()
    per_prompt = torch.randn(len(CLASSES), len(TEMPLATES), 8)
    bank.step_tokens()
    rows = torch.arange(len(CLASSES))
    expected = F.normalize(per_prompt[rows, bank.drawn], dim=-1)
    torch.testing.assert_close(bank.pool(per_prompt, training=True), expected)
    ensemble = F.normalize(F.normalize(per_prompt, dim=-1).mean(dim=1), dim=-1)
    torch.testing.assert_close(bank.pool(per_prompt, training=False), ensemble)


def test_tokens_must_be_class_major_rows():
    with pytest.raises(ValueError, match="num_classes"):
        ClassPrompts(torch.zeros(7, 77, dtype=torch.long), 2)
