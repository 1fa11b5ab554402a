"""Zero-shot CLIP: class-name prompts through the text tower; nothing trains."""

from __future__ import annotations

from clipstudy.methods.base import BuildContext, Method
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import TextHead


@METHODS.register("zero_shot")
class ZeroShot(Method):
    name = "zero_shot"
    description = "class-prompt embeddings (template ensemble) as a fixed classifier; epoch 0 only"
    trains = False
    frozen_backbone = True
    reads = ()  # only what the engine reads for every trial (model, data, prompts, eval)

    def build(self, ctx: BuildContext) -> ImageClassifier:
        clip = ctx.built.model.requires_grad_(False)
        head = TextHead(ctx.class_embeddings(), ctx.logit_scale(), trainable=False, bias=ctx.logit_bias())
        head = head.to(ctx.device)
        return ImageClassifier(clip, head)
