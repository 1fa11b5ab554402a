"""SplitMultiheadAttention is numerically nn.MultiheadAttention; split/fuse are exact inverses."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from torch import nn

import clipstudy.models.build  # noqa: F401  (registers the tiny architecture)
from clipstudy.models import TINY_ARCH, SplitMultiheadAttention, fuse_attention, split_attention

TOL = 1e-5


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _check_model_equivalence(arch: str, batch: int) -> None:
    torch.manual_seed(0)
    base = open_clip.create_model(arch, pretrained=None).eval()
    size = base.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    images = torch.randn(batch, 3, size, size)
    texts = open_clip.get_tokenizer(arch)(["a photo of a cat", "a diagram"][:batch] * (batch // 2 or 1))
    split = copy.deepcopy(base)
    blocks = len(base.visual.transformer.resblocks) + len(base.transformer.resblocks)
    assert split_attention(split) == blocks
    assert split_attention(split) == 0
    assert all(isinstance(b.attn, SplitMultiheadAttention) for b in split.visual.transformer.resblocks)
    assert all(isinstance(b.attn, SplitMultiheadAttention) for b in split.transformer.resblocks)
    with torch.no_grad():
        assert _max_diff(base.encode_image(images), split.encode_image(images)) <= TOL
        assert _max_diff(base.encode_text(texts), split.encode_text(texts)) <= TOL

    assert fuse_attention(split) == blocks
    fused, original = split.state_dict(), base.state_dict()
    assert list(fused) == list(original)
    assert all(torch.equal(fused[k], original[k]) for k in original)


def test_tiny_split_matches_original_both_towers():
    _check_model_equivalence(TINY_ARCH, batch=4)


@pytest.mark.slow
def test_vit_b32_split_matches_original_both_towers():
    _check_model_equivalence("ViT-B-32", batch=2)


def _pair(batch_first: bool, bias: bool = True) -> tuple[nn.MultiheadAttention, SplitMultiheadAttention]:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, bias=bias, batch_first=batch_first)
    with torch.no_grad():
        if bias:
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha, SplitMultiheadAttention.from_fused(mha)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mask_kind", ["none", "float_causal", "bool_causal", "bool_3d", "padding", "both"])
def test_masks_match_multihead_attention(batch_first: bool, bias: bool, mask_kind: str):
    mha, split = _pair(batch_first, bias)
    n, length = 3, 5
    x = torch.randn(n, length, 16) if batch_first else torch.randn(length, n, 16)
    causal_bool = torch.ones(length, length, dtype=torch.bool).triu(1)
    kwargs: dict = {}
    if mask_kind == "float_causal":
        kwargs["attn_mask"] = torch.zeros(length, length).masked_fill(causal_bool, float("-inf"))
    elif mask_kind == "bool_causal":
        kwargs["attn_mask"] = causal_bool
    elif mask_kind == "bool_3d":
        kwargs["attn_mask"] = torch.rand(n * 4, length, length) > 0.7
        kwargs["attn_mask"][..., 0] = False  # keep every row attendable
    elif mask_kind == "padding":
        kwargs["key_padding_mask"] = torch.tensor([[False] * length, [False] * 3 + [True] * 2, [False] * length])
    elif mask_kind == "both":
        kwargs["attn_mask"] = causal_bool
        kwargs["key_padding_mask"] = torch.tensor([[False] * length, [False] * 4 + [True], [False] * length])
    expected = mha(x, x, x, need_weights=False, **kwargs)[0]
    out, weights = split(x, x, x, need_weights=False, **kwargs)
    assert weights is None
    assert out.shape == expected.shape
    assert _max_diff(out, expected) <= TOL


def test_cross_attention_inputs_match():
    mha, split = _pair(batch_first=True)
    q, kv = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    assert _max_diff(split(q, kv, kv)[0], mha(q, kv, kv, need_weights=False)[0]) <= TOL


def test_gradients_flow_through_split_projections():
    _, split = _pair(batch_first=True)
    x = torch.randn(2, 4, 16)
    split(x, x, x)[0].sum().backward()
    assert all(p.grad is not None for p in split.parameters())


def test_need_weights_is_refused():
    _, split = _pair(batch_first=True)
    x = torch.randn(1, 2, 16)
    with pytest.raises(NotImplementedError):
        split(x, x, x, need_weights=True)
