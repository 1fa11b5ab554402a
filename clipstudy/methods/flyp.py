"""FLYP (Goyal et al. 2023, "Finetune like you pretrain"): both towers train with CLIP's contrastive loss
between each image and its class prompt; prediction is the cosine to the class prompts."""

from __future__ import annotations

from typing import ClassVar

from clipstudy.methods.base import BuildContext, Method
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import TextHead


def build_both_towers(ctx: BuildContext) -> ImageClassifier:
    """Every CLIP weight trains except the logit scale; the classifier is the text tower's live embeddings
    of the class prompts (CLIP-CITE's DVA, Eq. 2: a classifier initialised as, and staying, θ_T(t_i))."""
    clip = ctx.built.model.requires_grad_(True)
    for name, param in clip.named_parameters():
        if name.startswith("logit_"):
            param.requires_grad_(False)
    head = TextHead(ctx.class_embeddings(), ctx.logit_scale(), trainable=False, bias=ctx.logit_bias())
    head = head.to(ctx.device)
    return ImageClassifier(clip, head, live_prompts=ctx.prompt_tokens())


@METHODS.register("flyp")
class Flyp(Method):
    name = "flyp"
    description = "both towers fine-tune with the contrastive loss against class prompts; cosine classifier"
    reads = ("tokens",)
    loss_defaults: ClassVar[dict[str, float]] = {"ce_weight": 0.0, "contrastive_weight": 1.0}

    def build(self, ctx: BuildContext) -> ImageClassifier:
        return build_both_towers(ctx)
