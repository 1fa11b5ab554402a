"""A-CLIP-style token masking: in training, an open_clip ViT sees its class token and the most salient patches.

open_clip's `VisionTransformer` sends its token sequence (class token first, positional embeddings added)
through `self.patch_dropout` before `ln_pre`; `SalientTokenKeep` takes that slot. In eval mode it is the
identity, so evaluation always uses every token.

Saliency (A-CLIP ranks patches by the class token's attention in a teacher's last block):
- `attention`: the class token's attention to each patch in the tower's last block, head-averaged, from a
  no-grad pass over all tokens through the tower itself (A-CLIP's teacher is an EMA of the model; this is
  the model as it is now). Costs one extra forward without gradients per training step.
- `norm`: the L2 norm of each patch embedding: free, but a cruder notion of saliency.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from clipstudy.errors import ConfigError, ModelError
from clipstudy.models.attention import SplitMultiheadAttention

SALIENCY = ("attention", "norm")


class SalientTokenKeep(nn.Module):
    def __init__(self, visual: nn.Module, keep_ratio: float, saliency: str = "attention"):
        super().__init__()
        if not 0 < keep_ratio <= 1:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        if saliency not in SALIENCY:
            raise ValueError(f"saliency must be one of {SALIENCY}, got {saliency!r}")
        self.keep_ratio = keep_ratio
        self.saliency = saliency
        # A back-reference, held in a tuple so that it is not registered as a submodule (no cycle in
        # modules() or state_dict()); deepcopy maps it to the copied tower.
        self._tower = (visual,)

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}, saliency={self.saliency}"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [B, 1 + N, width], class token first. Returns [B, 1 + k, width] in training mode."""
        patches = tokens.shape[1] - 1
        keep = max(1, round(patches * self.keep_ratio))
        if not self.training or keep >= patches:
            return tokens
        scores = self.scores(tokens)
        index = scores.topk(keep, dim=1).indices.sort(dim=1).values + 1  # keep the patches' order
        index = torch.cat([torch.zeros_like(index[:, :1]), index], dim=1)
        return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))

    @torch.no_grad()
    def scores(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N] saliency of each patch token."""
        if self.saliency == "norm":
            return tokens[:, 1:].float().norm(dim=-1)
        return class_attention(self._tower[0], tokens)


def class_attention(visual: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The class token's head-averaged attention to each patch in the last block, all tokens present."""
    transformer = visual.transformer
    batch_first = getattr(transformer, "batch_first", True)
    x = visual.ln_pre(tokens)
    x = x if batch_first else x.transpose(0, 1)
    blocks = transformer.resblocks
    for block in blocks[:-1]:
        x = block(x)
    x = x if batch_first else x.transpose(0, 1)
    last = blocks[-1]
    attn = last.attn
    if not isinstance(attn, SplitMultiheadAttention):
        raise ModelError("token masking by attention needs split attention (build_clip splits it)")
    x = last.ln_1(x)
    batch, length, _ = x.shape
    query = attn.q_proj(x[:, :1]).view(batch, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
    key = attn.k_proj(x).view(batch, length, attn.num_heads, attn.head_dim).transpose(1, 2)
    weights = (query @ key.transpose(-2, -1) / math.sqrt(attn.head_dim)).float().softmax(dim=-1)
    return weights.mean(dim=1)[:, 0, 1:]


def apply_token_keep(visual: nn.Module, keep_ratio: float, saliency: str = "attention") -> SalientTokenKeep:
    """Put a `SalientTokenKeep` in the ViT's patch-dropout slot, in place; returns it."""
    if not hasattr(visual, "patch_dropout") or not hasattr(getattr(visual, "transformer", None), "resblocks"):
        raise ConfigError(
            f"tokens.keep_ratio < 1 needs an open_clip ViT image tower; {type(visual).__name__} has no patch "
            "tokens to drop: set tokens.keep_ratio: 1"
        )
    if not isinstance(visual.patch_dropout, nn.Identity):
        raise ConfigError("the image tower already drops patches (open_clip patch_dropout); set tokens.keep_ratio: 1")
    module = SalientTokenKeep(visual, keep_ratio, saliency)
    visual.patch_dropout = module
    return module
