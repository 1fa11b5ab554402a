"""LoRA: low-rank adapters (peft) on chosen projections of the chosen towers, plus a head."""

from __future__ import annotations

import torch

from clipstudy.config import TrialConfig
from clipstudy.errors import ConfigError
from clipstudy.methods.base import BuildContext, Method, ParamGroup, image_feature_dim, make_head, split_decay
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier


@METHODS.register("lora")
class Lora(Method):
    name = "lora"
    description = "peft LoRA on q/k/v/o/fc1/fc2 of the vision and/or text tower, plus a head"
    reads = ("head", "lora", "tokens", "train.head_lr")

    def build(self, ctx: BuildContext) -> ImageClassifier:
        cfg = ctx.cfg
        text_tower = "text" in cfg.lora.towers
        if text_tower and cfg.head.kind != "text":
            raise ConfigError(
                "lora.towers includes 'text': the classifier must come from the text tower; "
                f"set head.kind: text (got '{cfg.head.kind}')"
            )
        from clipstudy.models.lora import apply_lora  # peft is slow to import; only LoRA trials need it

        clip = ctx.built.model.requires_grad_(False)
        head = make_head(ctx, image_feature_dim(clip), trainable=not text_tower)
        prompts = ctx.prompt_tokens() if text_tower else None
        apply_lora(clip, cfg.lora)
        return ImageClassifier(clip, head, live_prompts=prompts)

    def param_groups(self, model: ImageClassifier, cfg: TrialConfig) -> list[ParamGroup]:
        train = cfg.train
        head_lr = train.head_lr if train.head_lr is not None else train.lr
        adapters = [(n, p) for n, p in model.clip.named_parameters() if p.requires_grad]
        decay_all = train.decay_norms_and_biases
        head = split_decay("head", list(model.head.named_parameters()), head_lr, train.weight_decay, decay_all)
        return head + split_decay("adapters", adapters, train.lr, train.weight_decay, decay_all)

    def ensemble_origin(self, model: ImageClassifier) -> dict[str, torch.Tensor]:
        """WiSE-FT scales the adapters instead of interpolating them (A and B are not linear in α)."""
        return {n: w for n, w in (super().ensemble_origin(model) or {}).items() if ".lora_" not in n}

    def set_ensemble(
        self, model: ImageClassifier, origin: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float
    ) -> None:
        """W0 + α·(alpha/r)·B·A: exactly the base weights at α=0 and the trained adapters at α=1."""
        from clipstudy.models.lora import set_lora_scale

        model.load_state_dict({n: w for n, w in finetuned.items() if ".lora_" in n}, strict=False)
        set_lora_scale(model.clip, alpha)
        super().set_ensemble(model, origin, finetuned, alpha)
