"""Models for clipstudy: open_clip and torchvision building (with fast offline failure), split attention,
LoRA, heads.

Names are loaded on first use: open_clip and peft take seconds to import, and commands such as
`clipstudy ls methods` must not pay for them.
"""

from importlib import import_module

_HOMES = {
    "SplitMultiheadAttention": "attention",
    "SplitQKV": "attention",
    "fuse_attention": "attention",
    "split_attention": "attention",
    "TINY_ARCH": "names",
    "TINY_SIGLIP_ARCH": "names",
    "known_architectures": "names",
    "BuiltModel": "built_model",
    "build_clip": "build",
    "build_model": "build",
    "describe_architectures": "build",
    "list_architectures": "names",
    "ImageOnlyModel": "torchvision_backbones",
    "TARGET_MODULES": "lora",
    "TIMM_TARGET_MODULES": "lora",
    "apply_lora": "lora",
    "count_lora_params": "lora",
    "load_lora": "lora",
    "load_lora_state_dict": "lora",
    "lora_state_dict": "lora",
    "merge_lora": "lora",
    "save_lora": "lora",
    "set_lora_scale": "lora",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'clipstudy.models' has no attribute '{name}'")
    return getattr(import_module(f"clipstudy.models.{_HOMES[name]}"), name)
