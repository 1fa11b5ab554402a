"""LoRA on a split open_clip model via peft: W = W0 + (alpha / r)·B·A, B zero-initialised.

Adapters are injected with `peft.inject_adapter_in_model` (no `PeftModel` wrapper, so the model keeps
open_clip's interface) on the chosen projections of the chosen towers' transformer blocks only: open_clip's
residual blocks, or the blocks of a timm ViT vision tower (SigLIP). The model must have been split first
(`attention.split_attention`, done by `build_clip`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from open_clip.transformer import ResidualAttentionBlock
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from timm.layers import Attention as TimmAttention
from torch import nn

from clipstudy.config import LoraConfig
from clipstudy.errors import ModelError
from clipstudy.models.attention import SplitQKV

TARGET_MODULES = {
    "q": "attn.q_proj",
    "k": "attn.k_proj",
    "v": "attn.v_proj",
    "o": "attn.out_proj",
    "fc1": "mlp.c_fc",
    "fc2": "mlp.c_proj",
}
"""`lora.targets` -> module path inside an open_clip residual block."""
TIMM_TARGET_MODULES = {
    "q": "attn.qkv.q_proj",
    "k": "attn.qkv.k_proj",
    "v": "attn.qkv.v_proj",
    "o": "attn.proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}
"""`lora.targets` -> module path inside a timm ViT block (after `split_attention`)."""
ADAPTER = "default"
PEFT_INIT: dict[str, bool | str] = {"default": True, "gaussian": "gaussian"}
"""`lora.init` -> peft's `init_lora_weights`: A Kaiming-uniform (True) or normal with std 1/r; B zero either way."""


def tower_blocks(model: nn.Module, tower: str) -> tuple[nn.Module, dict[str, str]] | None:
    """The container of the tower's transformer blocks (children named 0, 1, ...) and the target paths
    inside a block, or None if the tower has no blocks LoRA knows (e.g. a ResNet)."""
    owner = getattr(model, "visual", None) if tower == "vision" else getattr(model, "text", None) or model
    blocks = getattr(getattr(owner, "transformer", None), "resblocks", None)
    if isinstance(blocks, nn.ModuleList) and blocks and all(isinstance(b, ResidualAttentionBlock) for b in blocks):
        for block in blocks:
            if isinstance(block.attn, nn.MultiheadAttention):
                raise _unsplit_error()
        return blocks, TARGET_MODULES
    blocks = getattr(getattr(owner, "trunk", None), "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and blocks and all(_is_timm_vit_block(b) for b in blocks):
        for block in blocks:
            if not isinstance(block.attn.qkv, SplitQKV):
                raise _unsplit_error()
        return blocks, TIMM_TARGET_MODULES
    return None


def _is_timm_vit_block(block: nn.Module) -> bool:
    mlp = getattr(block, "mlp", None)
    return isinstance(getattr(block, "attn", None), TimmAttention) and hasattr(mlp, "fc1") and hasattr(mlp, "fc2")


def _unsplit_error() -> ModelError:
    return ModelError(
        "LoRA needs split attention: call clipstudy.models.split_attention(model) first (build_clip does)"
    )


def target_regex(model: nn.Module, cfg: LoraConfig) -> str:
    """A regex peft full-matches against module names: the targets inside the towers' transformer blocks."""
    names = {id(module): name for name, module in model.named_modules()}
    patterns = []
    for tower in cfg.towers:
        found = tower_blocks(model, tower)
        if found is None:
            owner = getattr(model, "visual", model) if tower == "vision" else model
            raise ModelError(
                f"lora.towers: LoRA on the {tower} tower needs transformer attention blocks (open_clip or timm "
                f"ViT); this model's {tower} tower ({type(owner).__name__}) has none; use method full_ft or "
                "linear_probe, or another model.arch"
            )
        blocks, targets = found
        projections = "|".join(re.escape(targets[t]) for t in cfg.targets)
        patterns.append(rf"{re.escape(names[id(blocks)])}\.\d+\.(?:{projections})")
    return "|".join(f"(?:{p})" for p in patterns)


def apply_lora(model: nn.Module, cfg: LoraConfig) -> list[str]:
    """Inject LoRA adapters in place; afterwards only the adapters' A/B weights require grad.

    Returns the names of the adapted modules.
    """
    if lora_layers(model):
        raise ModelError("the model already has LoRA adapters")
    pattern = target_regex(model, cfg)
    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        bias="none",
        target_modules=pattern,
        init_lora_weights=PEFT_INIT[cfg.init],
    )
    inject_adapter_in_model(peft_cfg, model, adapter_name=ADAPTER)
    for name, param in model.named_parameters():
        param.requires_grad = _is_lora_param(name)
    return [name for name, _ in lora_layers(model)]


def lora_layers(model: nn.Module) -> list[tuple[str, LoraLayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]


def _is_lora_param(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the adapter weights only (keys as in `model.state_dict()`)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if _is_lora_param(k)}


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter weights saved by `lora_state_dict`; the model must carry the same adapters."""
    expected = set(lora_state_dict(model))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(
            f"LoRA weights do not match the model's adapters: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); apply_lora with the same config first"
        )
    model.load_state_dict(state, strict=False)


def save_lora(model: nn.Module, path: str | Path) -> None:
    save_file({k: v.contiguous() for k, v in lora_state_dict(model).items()}, str(path))


def load_lora(model: nn.Module, path: str | Path) -> None:
    device = next((p.device for n, p in model.named_parameters() if _is_lora_param(n)), torch.device("cpu"))
    load_lora_state_dict(model, load_file(str(path), device=str(device)))


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each adapter (at its current scale) into its base weight and remove the LoRA layers, in place.

    The result is a plain open_clip model with no inference overhead; it is also returned.
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    return model


def set_lora_scale(model: nn.Module, factor: float) -> None:
    """Scale every adapter's update to factor·(alpha / r): 0 gives the base model, 1 the trained one."""
    for _, layer in lora_layers(model):
        if layer.merged:
            raise ModelError("cannot rescale LoRA adapters that are merged into the weights")
        for adapter in layer.lora_A:
            layer.set_scale(adapter, factor)


def count_lora_params(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if _is_lora_param(n))
