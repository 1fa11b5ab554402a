"""Separate q/k/v projections for open_clip's and timm's attention, so that LoRA can adapt each one alone.

open_clip's `ResidualAttentionBlock` uses `nn.MultiheadAttention`, whose fused `in_proj_weight` cannot
be targeted per projection and whose `out_proj` weight is read directly (a LoRA wrapped around it would
be ignored). `split_attention` swaps it for `SplitMultiheadAttention` (four `nn.Linear`, computed with
`scaled_dot_product_attention`); `fuse_attention` restores open_clip's layout for export.

timm vision towers (SigLIP's) compute q, k and v with one fused `qkv` Linear that timm's `Attention`
calls as a module; `split_attention` swaps that Linear for `SplitQKV` (three Linears whose outputs are
concatenated), so timm's own attention code runs unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from timm.layers import Attention as TimmAttention
from torch import nn

from clipstudy.errors import ModelError


class SplitMultiheadAttention(nn.Module):
    """Drop-in for `nn.MultiheadAttention` (same call signature) with separate q/k/v/out projections."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        factory = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)

    @classmethod
    def from_fused(cls, mha: nn.MultiheadAttention) -> SplitMultiheadAttention:
        """Copy an `nn.MultiheadAttention`'s weights exactly into a split module."""
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ModelError(
                "only self-attention-shaped nn.MultiheadAttention (no kdim/vdim, bias_k, add_zero_attn) can be split"
            )
        weight = mha.in_proj_weight
        has_bias = mha.in_proj_bias is not None
        split = cls(
            mha.embed_dim,
            mha.num_heads,
            mha.dropout,
            has_bias,
            mha.batch_first,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            for proj, w in zip((split.q_proj, split.k_proj, split.v_proj), weight.chunk(3), strict=True):
                proj.weight.copy_(w)
            if has_bias:
                for proj, b in zip((split.q_proj, split.k_proj, split.v_proj), mha.in_proj_bias.chunk(3), strict=True):
                    proj.bias.copy_(b)
                split.out_proj.bias.copy_(mha.out_proj.bias)
            split.out_proj.weight.copy_(mha.out_proj.weight)
        split.train(mha.training)
        return split

    def to_fused(self) -> nn.MultiheadAttention:
        """The inverse of `from_fused`: an `nn.MultiheadAttention` with the q/k/v weights concatenated."""
        weight = self.q_proj.weight
        has_bias = self.q_proj.bias is not None
        mha = nn.MultiheadAttention(
            self.embed_dim,
            self.num_heads,
            dropout=self.dropout,
            bias=has_bias,
            batch_first=self.batch_first,
            device=weight.device,
            dtype=weight.dtype,
        )
        projections = (self.q_proj, self.k_proj, self.v_proj)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
            mha.out_proj.weight.copy_(self.out_proj.weight)
            if has_bias:
                mha.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
                mha.out_proj.bias.copy_(self.out_proj.bias)
        mha.train(self.training)
        return mha

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, None]:
        """Same masks as `nn.MultiheadAttention`: float masks are added, bool masks are True = masked.

        `attn_mask` is (L, S) or (N * num_heads, L, S); `key_padding_mask` is (N, S).
        Attention weights are never returned (open_clip always asks for none).
        """
        if need_weights:
            raise NotImplementedError(
                "SplitMultiheadAttention does not return attention weights; call it with need_weights=False"
            )
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, q_len, _ = query.shape
        k_len = key.shape[1]
        q, k, v = (
            proj(t).view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
            for proj, t in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value))
        )
        mask = _sdpa_mask(attn_mask, key_padding_mask, batch, self.num_heads, q_len, k_len, q.dtype)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and mask is None,
        )
        out = self.out_proj(out.transpose(1, 2).reshape(batch, q_len, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, None


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """nn.MultiheadAttention semantics: a bool mask's True entries are excluded; a float mask is added."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _sdpa_mask(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    batch: int,
    heads: int,
    q_len: int,
    k_len: int,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Combine MHA-style masks into one additive mask broadcastable to (N, heads, L, S)."""
    mask = None
    if attn_mask is not None:
        mask = _additive(attn_mask, dtype)
        if mask.dim() == 3:
            mask = mask.view(batch, heads, q_len, k_len)
    if key_padding_mask is not None:
        padding = _additive(key_padding_mask, dtype).view(batch, 1, 1, k_len)
        mask = padding if mask is None else mask + padding
    return mask


class SplitQKV(nn.Module):
    """Drop-in for timm's fused `qkv` Linear: q, k and v from three Linears, concatenated as timm expects."""

    def __init__(self, q_proj: nn.Linear, k_proj: nn.Linear, v_proj: nn.Linear):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = q_proj, k_proj, v_proj

    @classmethod
    def from_fused(cls, qkv: nn.Linear) -> SplitQKV:
        """Copy a fused [3 * D, in] Linear exactly into three [D, in] Linears."""
        if qkv.out_features % 3:
            raise ModelError(f"a fused qkv projection has 3 * D outputs; got {qkv.out_features}")
        dim, has_bias = qkv.out_features // 3, qkv.bias is not None
        factory = {"device": qkv.weight.device, "dtype": qkv.weight.dtype}
        projections = [nn.Linear(qkv.in_features, dim, bias=has_bias, **factory) for _ in range(3)]
        with torch.no_grad():
            for i, proj in enumerate(projections):
                proj.weight.copy_(qkv.weight[i * dim : (i + 1) * dim])
                if has_bias:
                    proj.bias.copy_(qkv.bias[i * dim : (i + 1) * dim])
        split = cls(*projections)
        split.train(qkv.training)
        return split

    def to_fused(self) -> nn.Linear:
        projections = (self.q_proj, self.k_proj, self.v_proj)
        weight = self.q_proj.weight
        has_bias = self.q_proj.bias is not None
        qkv = nn.Linear(weight.shape[1], 3 * weight.shape[0], bias=has_bias, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            qkv.weight.copy_(torch.cat([p.weight for p in projections]))
            if has_bias:
                qkv.bias.copy_(torch.cat([p.bias for p in projections]))
        qkv.train(self.training)
        return qkv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)


def _residual_blocks(model: nn.Module) -> list[ResidualAttentionBlock]:
    return [m for m in model.modules() if isinstance(m, ResidualAttentionBlock)]


def _timm_attentions(model: nn.Module) -> list[TimmAttention]:
    return [m for m in model.modules() if isinstance(m, TimmAttention)]


def split_attention(model: nn.Module) -> int:
    """Split each residual block's `nn.MultiheadAttention` and each timm `Attention`'s `qkv`, in place.

    Returns the number of attention modules split (0 when already split). Other attention modules
    (e.g. the attentional poolers) are left alone.
    """
    count = 0
    for block in _residual_blocks(model):
        if type(block.attn) is nn.MultiheadAttention:
            block.attn = SplitMultiheadAttention.from_fused(block.attn)
            count += 1
    for attn in _timm_attentions(model):
        if type(attn.qkv) is nn.Linear:
            attn.qkv = SplitQKV.from_fused(attn.qkv)
            count += 1
    return count


def fuse_attention(model: nn.Module) -> int:
    """Inverse of `split_attention`: restore open_clip's and timm's fused layout (e.g. to export a model).

    LoRA adapters must be merged first (`clipstudy.models.lora.merge_lora`). Returns the number fused.
    """
    count = 0
    for block in _residual_blocks(model):
        if isinstance(block.attn, SplitMultiheadAttention):
            projections = (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.out_proj)
            _check_no_adapters(projections)
            block.attn = block.attn.to_fused()
            count += 1
    for attn in _timm_attentions(model):
        if isinstance(attn.qkv, SplitQKV):
            _check_no_adapters((attn.qkv.q_proj, attn.qkv.k_proj, attn.qkv.v_proj, attn.proj))
            attn.qkv = attn.qkv.to_fused()
            count += 1
    return count


def _check_no_adapters(projections: tuple[nn.Module, ...]) -> None:
    if any(type(p) is not nn.Linear for p in projections):
        raise ModelError("cannot fuse attention that still holds LoRA adapters; call merge_lora first")
