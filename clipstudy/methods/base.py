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
from clipstudy.methods.objective import LossTerm, standard_terms
from clipstudy.methods.wise import interpolate
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
        if not self.built.has_text:
            raise ConfigError(
                f"model.arch '{self.cfg.model.arch}' is an image-only backbone with no text tower, but "
                f"{_text_user(self.cfg)} needs class-prompt embeddings from one; use method full_ft or "
                "linear_probe with head.kind linear or mlp, or an open_clip model.arch"
            )
        return tokenize_prompts(self.built.tokenizer, self.data.classnames, self.templates).to(self.device)

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """The zero-shot classifier weights [C, D] from the (frozen, untrained) text tower."""
        tokens = self.prompt_tokens()
        return class_embeddings_from_tokens(self.built.model.encode_text, tokens, self.data.num_classes)

    def logit_scale(self) -> float:
        return float(self.built.model.logit_scale.exp().item())

    def logit_bias(self) -> float | None:
        """A sigmoid model's (SigLIP's) learnt logit bias; None for softmax CLIP."""
        bias = getattr(self.built.model, "logit_bias", None)
        return None if bias is None else float(bias.item())


def _text_user(cfg: TrialConfig) -> str:
    """The config setting that asked for the text tower, for error messages."""
    if cfg.method == "lora" and "text" in cfg.lora.towers:
        return "lora.towers: [text]"
    if cfg.head.kind == "text":
        return "head.kind: text"
    return f"method: {cfg.method}"


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
    loss_defaults: ClassVar[dict[str, float]] = {}
    """Weights of `loss.*` this method uses when the config leaves them unset (else CE alone)."""

    def build(self, ctx: BuildContext) -> ImageClassifier:
        raise NotImplementedError

    def loss_terms(self, ctx: BuildContext) -> list[LossTerm]:
        """Loss terms added to the weighted CE (called once per trial, before `build`): those `loss.*` asks for.
        A method with a term of its own appends it here."""
        return standard_terms(ctx)

    def ensemble_origin(self, model: ImageClassifier) -> dict[str, torch.Tensor] | None:
        """The starting weights WiSE-FT interpolates from (CPU copies, taken before training): every trained
        floating-point weight (batch-norm statistics included) that starts from the pretrained model. A linear
        or MLP head starts random: it keeps its trained weights. None when nothing starts pretrained (a linear
        probe): there is no ensemble to evaluate."""
        textual = isinstance(model.head, TextHead)
        origin = {
            name: value.cpu().clone()
            for name, value in model.trainable_state().items()
            if value.is_floating_point() and (textual or not name.startswith("head."))
        }
        return origin or None

    def set_ensemble(
        self, model: ImageClassifier, origin: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float
    ) -> None:
        """Load θ = (1-α)·origin + α·finetuned into the model: α=0 gives the origin exactly, α=1 the fine-tuned."""
        model.load_state_dict(interpolate(origin, finetuned, alpha), strict=False)

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
        head = TextHead(ctx.class_embeddings(), ctx.logit_scale(), trainable, head_cfg.dropout, bias=ctx.logit_bias())
    head.requires_grad_(trainable)
    return head.to(ctx.device)


def image_feature_dim(model: nn.Module) -> int:
    dim = getattr(model.visual, "output_dim", None)
    if dim is None:
        raise ConfigError(f"cannot tell the image feature size of {type(model.visual).__name__}")
    return int(dim)


def split_decay(name: str, named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[ParamGroup]:
    """Weight decay on matrices only: biases, norms, embeddings and scales are not decayed."""
    embeddings = ("class_embedding", "positional_embedding", "token_embedding.weight")
    decay = [p for n, p in named if p.ndim >= 2 and not n.endswith(embeddings)]
    decay_ids = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in decay_ids]
    groups = [ParamGroup(name, decay, lr, weight_decay), ParamGroup(f"{name}.no_decay", rest, lr, 0.0)]
    return [g for g in groups if g.params]
