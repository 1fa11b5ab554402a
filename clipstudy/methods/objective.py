"""What a training step optimises beyond the classifier's cross-entropy, and what it sees.

The engine computes CE on the logits; an `Objective` adds the weighted loss terms of `loss.*` (and any of the
method's own, `Method.loss_terms`) and reports each term by name, so the engine can log `train/loss_<name>`.
With the default weights (CE alone) the objective is `plain` and the engine's step is exactly what it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from clipstudy.config import TrialConfig
from clipstudy.errors import ConfigError, or_list
from clipstudy.methods.base import BuildContext, LossTerm, Method, Step
from clipstudy.methods.losses import clip_contrastive, similarity_distillation, supervised_contrastive
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import TextHead
from clipstudy.models.text import ClassPrompts, encode_in_chunks


@dataclass
class Objective:
    ce_weight: float = 1.0
    terms: list[LossTerm] = field(default_factory=list)
    zero_shot_text: Callable[[], torch.Tensor] | None = None
    """Computes the [C, D] zero-shot class embeddings, for terms on a model whose classifier is not the
    text tower's (a linear or MLP head: the text tower is then frozen, so once is enough)."""
    _fixed_text: torch.Tensor | None = field(default=None, repr=False)

    @property
    def plain(self) -> bool:
        """Cross-entropy alone: the engine's own step, unchanged."""
        return self.ce_weight == 1.0 and not self.terms

    def class_text(self, model: ImageClassifier) -> torch.Tensor:
        if model.live_text:
            return model.class_weights()
        if isinstance(model.head, TextHead):
            return model.head.weight
        if self._fixed_text is None:
            device = next(model.parameters()).device.type
            with torch.autocast(device, enabled=False):  # fp32, as the text head's own class embeddings
                self._fixed_text = self.zero_shot_text()
        return self._fixed_text

    def forward(
        self, model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, unweighted value of each term); the text tower runs once for both."""
        features = model.features(images)
        text = self.class_text(model)
        self._follow_prompts(model)
        logits = model.head(features, text) if model.live_text else model.classify(features)
        step = Step(images, labels, features, text, logits)
        return logits, {term.name: term.compute(step) for term in self.terms}

    def _follow_prompts(self, model: ImageClassifier) -> None:
        """Point the distillation teacher at the prompts the live text tower encoded this step, so that both
        compare images with the same templates (`prompts.train_templates`)."""
        for term in self.terms:
            if isinstance(term.compute, Distillation):
                term.compute.prompts = model.live_prompts if model.live_text and model.training else None

    def total(self, ce: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """ce_weight·CE + Σ weight·term; terms of weight 0 are left out (not multiplied by 0)."""
        weighted = [(self.ce_weight, ce)] + [(t.weight, values[t.name]) for t in self.terms]
        return sum(weight * value.float() for weight, value in weighted if weight)


class Teacher:
    """A frozen copy of the original CLIP (both towers) for distillation, built once per trial before the
    method changes the model (LoRA injection, unfrozen towers).

    Its text is encoded once, per prompt: `class_text` averages every template (CLIP's ensemble);
    `step_text` averages the templates a training step of the student's live text tower drew.
    """

    def __init__(self, ctx: BuildContext, chunk: int = 512):
        self.clip: nn.Module = copy.deepcopy(ctx.built.model).requires_grad_(False).eval()
        prompts = ctx.prompt_tokens()
        tokens = prompts.all_tokens()
        with torch.no_grad():
            encoded = encode_in_chunks(self.clip, tokens, chunk)
        per_prompt = encoded.float().view(prompts.num_classes, prompts.num_templates, -1)
        self.class_text = prompts.pool(per_prompt, training=False)
        drawing = ctx.cfg.prompts.train_templates != "all" and prompts.num_templates > 1
        self.prompt_text = per_prompt if drawing else None
        """[C, T, D] the teacher's embedding of every prompt, kept only where a step encodes fewer than all."""

    def step_text(self, prompts: ClassPrompts | None) -> torch.Tensor:
        """[C, D] the class text over the templates `prompts` last drew for training; all when None."""
        if prompts is None or prompts.drawn is None or self.prompt_text is None:
            return self.class_text
        return prompts.pool(self.prompt_text, training=True)

    @torch.no_grad()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)


@dataclass
class Distillation:
    """The VLD term: the student's in-batch similarities against the frozen teacher's, on the same images."""

    teacher: Teacher
    scale: float
    prompts: ClassPrompts | None = None
    """The student's live prompts, whose last draw the teacher's text follows (set by `Objective.forward`)."""

    def __call__(self, step: Step) -> torch.Tensor:
        teacher_image = self.teacher.image_features(step.images)
        teacher_text = self.teacher.step_text(self.prompts)[step.labels]
        return similarity_distillation(step.features, step.pair_text, teacher_image, teacher_text, self.scale)


def loss_scale(ctx: BuildContext) -> float:
    """1/τ of the loss terms: `loss.temperature`, else CLIP's own logit scale (the text head's)."""
    temperature = ctx.cfg.loss.temperature
    return 1.0 / temperature if temperature else ctx.logit_scale()


def standard_terms(ctx: BuildContext) -> list[LossTerm]:
    """The terms `loss.*` asks for: contrastive (CLIP/FLYP), SCL and VLD (CLIP-CITE)."""
    weights = ctx.cfg.loss
    if not (weights.contrastive_weight or weights.scl_weight or weights.vld_weight):
        return []  # before reading the logit scale: an image-only backbone (ResNet50) has none
    scale = loss_scale(ctx)
    terms = []
    if weights.contrastive_weight:
        terms.append(
            LossTerm(
                "contrastive", weights.contrastive_weight, lambda s: clip_contrastive(s.features, s.pair_text, scale)
            )
        )
    if weights.scl_weight:
        terms.append(
            LossTerm(
                "scl", weights.scl_weight, lambda s: supervised_contrastive(s.features, s.pair_text, s.labels, scale)
            )
        )
    if weights.vld_weight:
        terms.append(LossTerm("vld", weights.vld_weight, Distillation(Teacher(ctx), scale)))
    return terms


def build_objective(method: Method, ctx: BuildContext) -> Objective:
    """The trial's objective; call before `method.build`, which may change the original model in place
    (the distillation teacher copies it). Loss weights the config leaves unset are the method's defaults."""
    if not method.trains:
        return Objective()
    ctx = replace(ctx, cfg=method.with_defaults(ctx.cfg))
    weights = ctx.cfg.loss
    if weights.ce_weight != 1.0 or weights.contrastive_weight or weights.scl_weight or weights.vld_weight:
        check_objective(method, ctx)
    terms = standard_terms(ctx) + method.loss_terms(ctx)
    return Objective(weights.ce_weight, terms, zero_shot_text=ctx.class_embeddings)


def check_objective(method: Method, ctx: BuildContext) -> None:
    cfg = ctx.cfg
    textual = cfg.loss.contrastive_weight or cfg.loss.scl_weight or cfg.loss.vld_weight
    if textual and not getattr(ctx.built, "has_text", True):
        raise ConfigError(
            f"loss.* terms compare images with class-prompt texts, and model.arch '{cfg.model.arch}' has no text "
            "tower: leave loss.* at its defaults (cross-entropy) or use an open_clip model.arch"
        )
    if method.frozen_backbone:
        raise ConfigError(
            f"loss terms other than CE act through the CLIP towers, which {method.name} keeps frozen; "
            f"use a method that trains them ({', '.join(tower_training_methods())}) or leave loss.* at its defaults"
        )
    if cfg.augment.mixing:
        raise ConfigError(
            "the contrastive, SCL and VLD terms pair each image with its class's text; Mixup/CutMix blends two "
            "classes: set augment.mixup_alpha and augment.cutmix_alpha to 0 (or drop the extra loss terms)"
        )


def apply_token_masking(method: Method, model: ImageClassifier, cfg: TrialConfig) -> None:
    """Install A-CLIP-style token masking (`tokens.*`) on the image tower, for training only."""
    if cfg.tokens.keep_ratio >= 1:
        return
    if method.frozen_backbone:
        raise ConfigError(
            f"tokens.keep_ratio < 1 masks tokens while the image tower trains; {method.name} keeps it frozen "
            f"(its features may be cached): set tokens.keep_ratio: 1 or use {or_list(tower_training_methods())}"
        )
    from clipstudy.models.token_keep import apply_token_keep

    apply_token_keep(model.clip.visual, cfg.tokens.keep_ratio, cfg.tokens.saliency)


def tower_training_methods() -> list[str]:
    """The registered methods whose CLIP towers train (so loss terms and token masking act through them)."""
    return METHODS.names(where=lambda method: method.trains and not method.frozen_backbone)
