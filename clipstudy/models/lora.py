"""LoRA on a split open_clip model via peft: W = W0 + (alpha / r)·B·A, B zero-initialised.

Adapters are injected with `peft.inject_adapter_in_model` (no `PeftModel` wrapper, so the model keeps
open_clip's interface) on the chosen projections of the chosen towers' residual blocks only. The model
must have been split first (`attention.split_attention`, done by `build_clip`).
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
from torch import nn

from clipstudy.config import LoraConfig
from clipstudy.errors import ModelError

TARGET_MODULES = {
    "q": "attn.q_proj",
    "k": "attn.k_proj",
    "v": "attn.v_proj",
    "o": "attn.out_proj",
    "fc1": "mlp.c_fc",
    "fc2": "mlp.c_proj",
}
ADAPTER = "default"


def tower_transformer(model: nn.Module, tower: str) -> nn.Module | None:
    """The tower's open_clip `Transformer` (the one holding `resblocks`), or None if it has none."""
    owner = getattr(model, "visual", None) if tower == "vision" else getattr(model, "text", None) or model
    transformer = getattr(owner, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    if not isinstance(blocks, nn.ModuleList) or not all(isinstance(b, ResidualAttentionBlock) for b in blocks):
        return None
    return transformer


def target_regex(model: nn.Module, cfg: LoraConfig) -> str:
    """A regex peft full-matches against module names: the targets inside the towers' residual blocks."""
    names = {id(module): name for name, module in model.named_modules()}
    prefixes = []
    for tower in cfg.towers:
        transformer = tower_transformer(model, tower)
        if transformer is None:
            raise ModelError(
                f"LoRA on the {tower} tower needs open_clip residual attention blocks; "
                f"this architecture's {tower} tower has none"
            )
        for block in transformer.resblocks:
            if isinstance(block.attn, nn.MultiheadAttention):
                raise ModelError(
                    "LoRA needs split attention: call clipstudy.models.split_attention(model) first (build_clip does)"
                )
        prefixes.append(re.escape(f"{names[id(transformer)]}.resblocks"))
    projections = "|".join(re.escape(TARGET_MODULES[t]) for t in cfg.targets)
    return rf"(?:{'|'.join(prefixes)})\.\d+\.(?:{projections})"


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
