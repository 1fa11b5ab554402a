"""What a method is: the parts of training that differ between methods, and nothing else.

The engine owns the loop (batches, augmentation, loss, optimizer steps, evaluation, checkpoints).
A method says which model to build and which parameters train (`build`), with which learning
rates (`param_groups`), and whether its backbone is frozen (so the engine may cache features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from clipstudy.config import TrialConfig
from clipstudy.errors import ConfigError
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import (
    LinearHead,
    MLPHead,
    TextHead,
    class_embeddings_from_tokens,
    tokenize_prompts,
)

if TYPE_CHECKING:  # open_clip and the data layer load when a model is built, not to list methods
    from clipstudy.data import DataBundle
    from clipstudy.models.build import BuiltModel


@dataclass
class BuildContext:
    cfg: TrialConfig
    built: BuiltModel
    data: DataBundle
    device: torch.device

    @property
    def templates(self) -> list[str]:
        templates = self.data.templates
        return templates[:1] if self.cfg.prompts.templates == "single" else list(templates)

    def prompt_tokens(self) -> torch.Tensor:
        return tokenize_prompts(self.built.tokenizer, self.data.classnames, self.templates).to(self.device)

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """The zero-shot classifier weights [C, D] from the (frozen, untrained) text tower."""
        clip = self.built.model
        return class_embeddings_from_tokens(clip.encode_text, self.prompt_tokens(), self.data.num_classes)

    def logit_scale(self) -> float:
        return float(self.built.model.logit_scale.exp().item())


@dataclass
class ParamGroup:
    name: str
    params: list[nn.Parameter]
    lr: float
    weight_decay: float

    def as_torch(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "lr": self.lr, "weight_decay": self.weight_decay}


class Method:
    """Base class; subclasses register with `@METHODS.register(name)`."""

    name: ClassVar[str]
    description: ClassVar[str]
    trains: ClassVar[bool] = True
    """False for methods with nothing to train (zero-shot): only epoch 0 is evaluated."""
    frozen_backbone: ClassVar[bool] = False
    """True when the image encoder never changes, so its features can be computed once."""

    def build(self, ctx: BuildContext) -> ImageClassifier:
        raise NotImplementedError

    def param_groups(self, model: ImageClassifier, cfg: TrialConfig) -> list[ParamGroup]:
        """Trainable parameters with their learning rate; the default: one group at `train.lr`."""
        return split_decay(
            "all",
            [(n, p) for n, p in model.named_parameters() if p.requires_grad],
            cfg.train.lr,
            cfg.train.weight_decay,
        )

    def closed_form(self, cfg: TrialConfig) -> bool:
        """True when `solve` replaces the gradient epochs (one fit on cached features, logged as epoch 1)."""
        return False

    def solve(
        self,
        model: ImageClassifier,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        cfg: TrialConfig,
    ) -> dict[str, float]:
        """The closed-form fit; returns extra metrics for the epoch."""
        raise NotImplementedError(f"{self.name} has no closed-form fit")


def make_head(ctx: BuildContext, dim: int, trainable: bool = True) -> nn.Module:
    head_cfg = ctx.cfg.head
    if head_cfg.kind == "linear":
        head = LinearHead(dim, ctx.data.num_classes, head_cfg.dropout, head_cfg.normalize)
    elif head_cfg.kind == "mlp":
        head = MLPHead(dim, ctx.data.num_classes, head_cfg.hidden, head_cfg.dropout, head_cfg.normalize)
    else:
        head = TextHead(ctx.class_embeddings(), ctx.logit_scale(), trainable=trainable, dropout=head_cfg.dropout)
    head.requires_grad_(trainable)
    return head.to(ctx.device)


def image_feature_dim(model: nn.Module) -> int:
    dim = getattr(model.visual, "output_dim", None)
    if dim is None:
        raise ConfigError(f"cannot tell the image feature size of {type(model.visual).__name__}")
    return int(dim)


def split_decay(name: str, named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[ParamGroup]:
    """Weight decay on matrices only: biases, norms, embeddings and scales are not decayed."""
    decay = [p for n, p in named if p.ndim >= 2 and not n.endswith(("class_embedding", "positional_embedding"))]
    decay_ids = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in decay_ids]
    groups = [ParamGroup(name, decay, lr, weight_decay), ParamGroup(f"{name}.no_decay", rest, lr, 0.0)]
    return [g for g in groups if g.params]
