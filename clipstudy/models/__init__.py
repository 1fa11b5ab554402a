"""open_clip models for clipstudy: building (with fast offline failure), split attention and LoRA."""

from clipstudy.models.attention import SplitMultiheadAttention, fuse_attention, split_attention
from clipstudy.models.build import TINY_ARCH, BuiltModel, build_clip, list_architectures
from clipstudy.models.lora import (
    TARGET_MODULES,
    apply_lora,
    count_lora_params,
    load_lora,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora,
    save_lora,
    set_lora_scale,
)

__all__ = [
    "TARGET_MODULES",
    "TINY_ARCH",
    "BuiltModel",
    "SplitMultiheadAttention",
    "apply_lora",
    "build_clip",
    "count_lora_params",
    "fuse_attention",
    "list_architectures",
    "load_lora",
    "load_lora_state_dict",
    "lora_state_dict",
    "merge_lora",
    "save_lora",
    "set_lora_scale",
    "split_attention",
]
