"""A-CLIP-style token masking: which tokens survive, the attention saliency, and eval untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clipstudy.config import ModelConfig
from clipstudy.errors import ConfigError
from clipstudy.models.attention import fuse_attention
from clipstudy.models.build import build_clip
from clipstudy.models.token_keep import SalientTokenKeep, apply_token_keep, class_attention


@pytest.fixture
def clip():
    torch.manual_seed(0)
    return build_clip(ModelConfig(arch="clipstudy-tiny", pretrained="none")).model


def tokens_of(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The token sequence the patch-dropout slot receives (class token first, positions added)."""
    seen = {}
    handle = visual.patch_dropout.register_forward_hook(lambda m, args, out: seen.update(tokens=args[0]))
    with torch.no_grad():
        visual(images)
    handle.remove()
    return seen["tokens"]


def test_keeps_the_class_token_and_the_most_salient_patches_in_order(clip):
    images = torch.randn(3, 3, 32, 32)
    tokens = tokens_of(clip.visual, images)  # 1 + 16 patches
    keep = SalientTokenKeep(clip.visual, keep_ratio=0.25, saliency="norm").train()
    kept = keep(tokens)
    assert kept.shape == (3, 1 + 4, tokens.shape[-1])
    assert torch.equal(kept[:, 0], tokens[:, 0])
    norms = tokens[:, 1:].norm(dim=-1)
    for b in range(3):
        top = sorted(norms[b].topk(4).indices.tolist())
        assert torch.equal(kept[b, 1:], tokens[b, 1:][top])


def test_attention_saliency_is_the_class_tokens_attention_in_the_last_block(clip):
    images = torch.randn(2, 3, 32, 32)
    tokens = tokens_of(clip.visual, images)
    got = class_attention(clip.visual, tokens)
    fused = copy.deepcopy(clip)
    fuse_attention(fused)  # nn.MultiheadAttention can return its weights
    visual = fused.visual
    with torch.no_grad():
        x = visual.ln_pre(tokens)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        x = last.ln_1(x)
        _, weights = last.attn(x, x, x, need_weights=True, average_attn_weights=True)
    torch.testing.assert_close(got, weights[:, 0, 1:], rtol=1e-5, atol=1e-6)
    assert got.shape == (2, 16)


def test_masking_acts_in_training_only(clip):
    images = torch.randn(4, 3, 32, 32)
    original = copy.deepcopy(clip)
    apply_token_keep(clip.visual, keep_ratio=0.5)
    clip.eval()
    with torch.no_grad():
        assert torch.equal(clip.encode_image(images), original.encode_image(images))
    clip.train()
    lengths = []
    clip.visual.ln_pre.register_forward_hook(lambda m, args, out: lengths.append(out.shape[1]) and None)
    with torch.no_grad():
        masked = clip.encode_image(images)
    assert lengths == [1 + 16, 1 + 8]  # the no-grad saliency pass over all tokens, then the masked pass
    assert not torch.allclose(masked, original.encode_image(images))


def test_a_copy_of_the_model_scores_with_its_own_tower(clip):
    keep = apply_token_keep(clip.visual, keep_ratio=0.5)
    twin = copy.deepcopy(clip)
    assert twin.visual.patch_dropout._tower[0] is twin.visual
    assert keep._tower[0] is clip.visual
    assert sum(isinstance(m, SalientTokenKeep) for m in clip.modules()) == 1  # the back-reference is no child
    assert not any("patch_dropout" in name for name in clip.state_dict())


def test_needs_a_vit_tower():
    with pytest.raises(ConfigError, match="open_clip ViT"):
        apply_token_keep(nn.Linear(3, 3), keep_ratio=0.5)
