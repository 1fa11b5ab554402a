"""A tiny timm ViT shaped like SigLIP's vision tower (no class token, attention-pool 'map' head), at 32 px.

Registered with timm so that the shipped `clipstudy-tiny-siglip` open_clip config can name it as its
`timm_model_name`: tests and the quickstart then run SigLIP's real code path (timm tower, sigmoid logit
bias) offline and in milliseconds.
"""

from __future__ import annotations

import timm
from timm.models import register_model

from clipstudy.errors import ModelError

TINY_TIMM_VIT = "vit_clipstudy_tiny_siglip"
_TINY_SHAPE = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2}


@register_model
def vit_clipstudy_tiny_siglip(pretrained: bool = False, **kwargs) -> timm.models.VisionTransformer:
    if pretrained:
        raise ModelError(f"{TINY_TIMM_VIT} has no pretrained weights; it exists for offline tests")
    return timm.create_model("vit_base_patch16_siglip_224", pretrained=False, **{**_TINY_SHAPE, **kwargs})
