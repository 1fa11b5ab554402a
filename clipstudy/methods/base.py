"""What a method is: the parts of training that differ between methods, and nothing else.

The engine owns the loop (batches, augmentation, loss, optimizer steps, evaluation, checkpoints).
A method says which model to build and which parameters train (`build`), with which learning
rates (`param_groups`), whether its backbone is frozen (so the engine may cache features), which config
sections it reads (`reads`, so a study that sets others is warned) and its loss weights (`loss_defaults`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from clipstudy.config import LossConfig, TrialConfig
from clipstudy.errors import ConfigError, or_list
from clipstudy.methods.registry import METHODS
from clipstudy.methods.wise import interpolate
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import (
    LinearHead,
    MLPHead,
    TextHead,
    tokenize_prompts,
)
from clipstudy.models.text import ClassPrompts

if TYPE_CHECKING:  # open_clip and the data layer load when a model is built, not to list methods
    from clipstudy.data import DataBundle
    from clipstudy.models.built_model import BuiltModel


@dataclass
class BuildContext:
    cfg: TrialConfig
    built: BuiltModel
    data: DataBundle
    device: torch.device

    @property
    def templates(self) -> list[str]:
        """The prompt templates: `prompts.custom` or the dataset's, all or the first (`prompts.templates`)."""
        return prompt_templates(self.cfg, self.data.templates)

    @property
    def classnames(self) -> list[str]:
        """The class names in the prompts: `prompts.classnames` or the dataset's, in label order."""
        return prompt_classnames(self.cfg, self.data)[0]

    def prompt_tokens(self) -> ClassPrompts:
        """Every (class, template) prompt, tokenized on the device, and which of them a training step
        encodes when the text tower trains (`prompts.train_templates`, drawn from train.seed)."""
        if not self.built.has_text:
            raise ConfigError(
                f"model.arch '{self.cfg.model.arch}' is an image-only backbone with no text tower, but "
                f"{_text_user(self.cfg)} needs class-prompt embeddings from one; use method "
                f"{or_list(METHODS.names(where=lambda method: method.image_only))} with head.kind linear or mlp, "
                "or an open_clip model.arch"
            )
        tokens = tokenize_prompts(self.built.tokenizer, self.classnames, self.templates).to(self.device)
        return ClassPrompts(tokens, self.data.num_classes, self.cfg.prompts.train_templates, self.cfg.train.seed)

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """The zero-shot classifier weights [C, D] from the (frozen, untrained) text tower, every template."""
        return self.prompt_tokens().embeddings(self.built.model, training=False)

    def logit_scale(self) -> float:
        return float(self.built.model.logit_scale.exp().item())

    def logit_bias(self) -> float | None:
        """A sigmoid model's (SigLIP's) learnt logit bias; None for softmax CLIP."""
        bias = getattr(self.built.model, "logit_bias", None)
        return None if bias is None else float(bias.item())


def prompt_templates(cfg: TrialConfig, dataset_templates: list[str]) -> list[str]:
    """The templates of the trial's own dataset's prompts: `prompts.custom` replaces the dataset's; then
    all of them or the first (`prompts.templates`). Other datasets (retention) keep their own."""
    templates = cfg.prompts.custom or dataset_templates
    return templates[:1] if cfg.prompts.templates == "single" else list(templates)


def prompt_classnames(cfg: TrialConfig, data: DataBundle) -> tuple[list[str], list[str] | None]:
    """(the trial's classes, base-to-new's new classes or None) as the prompts name them.

    `prompts.classnames`: `readable` keeps the dataset's cleaned names, `raw` takes them as the dataset
    stores them; a list replaces them: one per class of the trial, in label order, or, with
    `data.classes: base`, one per class of the whole dataset (the base classes, then the new ones).
    """
    names = cfg.prompts.classnames
    if isinstance(names, str):
        new_set = data.new_classes
        new = None if new_set is None else _names_of(new_set.classnames, new_set.raw_classnames, names)
        return _names_of(data.classnames, data.raw_classnames, names), new
    new = None if data.new_classes is None else list(data.new_classes.classnames)
    count = data.num_classes
    if len(names) == count:
        return list(names), new
    if new is not None and len(names) == count + len(new):
        return list(names[:count]), list(names[count:])
    classes = f"{count} classes"
    if new is not None:
        classes += f" (data.classes: base; {count + len(new)} with the new ones)"
    raise ConfigError(
        f"prompts.classnames lists {len(names)} names, but data.name '{cfg.data.name}' has {classes}: give one "
        "name per class, in label order, or leave prompts.classnames unset to use the dataset's names"
    )


def _names_of(readable: list[str], raw: list[str] | None, which: str) -> list[str]:
    """`which` ('readable' or 'raw') of a dataset's names; a dataset whose names need no cleaning has no raw list."""
    return list(raw if which == "raw" and raw is not None else readable)


def _text_user(cfg: TrialConfig) -> str:
    """The config setting that asked for the text tower, for error messages."""
    if cfg.method == "lora" and "text" in cfg.lora.towers:
        return "lora.towers: [text]"
    if cfg.head.kind == "text":
        return "head.kind: text"
    return f"method: {cfg.method}"


@dataclass
class Step:
    """One training step as the loss terms see it."""

    images: torch.Tensor
    """The model's input batch (after augmentation)."""
    labels: torch.Tensor
    """[B] class indices."""
    features: torch.Tensor
    """[B, D] image features of the model being trained."""
    text: torch.Tensor
    """[C, D] class text embeddings (through the text tower, with gradients, where it trains)."""
    logits: torch.Tensor

    @property
    def pair_text(self) -> torch.Tensor:
        """[B, D] the class text of each image."""
        return self.text[self.labels]


@dataclass
class LossTerm:
    """A weighted term of the training objective, computed from each training step."""

    name: str
    """Logged as train/loss_<name>."""
    weight: float
    compute: Callable[[Step], torch.Tensor]


@dataclass
class ParamGroup:
    name: str
    params: list[nn.Parameter]
    lr: float
    weight_decay: float

    def as_torch(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "lr": self.lr, "weight_decay": self.weight_decay}


LOSS_WEIGHT_DEFAULTS = {"ce_weight": 1.0, "contrastive_weight": 0.0, "scl_weight": 0.0, "vld_weight": 0.0}
"""The weight of each loss term for a method that declares none of its own (`Method.loss_defaults`): CE alone."""

EVERY_TRIAL_READS = (
    "method",
    "model",
    "data",
    "prompts",
    "eval",
    "train.batch_size",
    "train.eval_batch_size",
    "train.precision",
    "train.seed",
    "train.device",
    "train.compile",
    "train.attention",
    "train.prefetch",
)
"""What the engine reads for every trial, whatever its method: the model and data it builds, where and at which
precision and batch size it evaluates, the class prompts and the transfer evaluation."""

TRAINING_READS = (
    "train.epochs",
    "train.optimizer",
    "train.lr",
    "train.weight_decay",
    "train.decay_norms_and_biases",
    "train.momentum",
    "train.adam_eps",
    "train.fused_optimizer",
    "train.scheduler",
    "train.warmup_epochs",
    "train.t0_epochs",
    "train.t_mult",
    "train.eta_min",
    "train.scheduler_step",
    "train.label_smoothing",
    "train.grad_clip",
    "train.select",
    "augment",
    "loss",
    "wise",
)
"""What the engine also reads for a method that trains: the optimizer and its schedule, augmentation, the
objective and WiSE-FT."""


class Method:
    """Base class; subclasses register with `@METHODS.register(name)`."""

    name: ClassVar[str]
    description: ClassVar[str]
    trains: ClassVar[bool] = True
    """False for methods with nothing to train (zero-shot): only epoch 0 is evaluated."""
    frozen_backbone: ClassVar[bool] = False
    """True when the image encoder never changes, so its features can be computed once."""
    image_only: ClassVar[bool] = False
    """True when it runs on an image-only backbone (a torchvision ResNet): it needs no text tower and no
    attention blocks, only a linear or MLP head."""
    reads: ClassVar[tuple[str, ...]] = ()
    """The config sections (`lora`) and single keys (`train.head_lr`) this method reads besides the engine's
    (`EVERY_TRIAL_READS`, and `TRAINING_READS` when it trains); a study that sets others for it is warned."""
    loss_defaults: ClassVar[dict[str, float]] = {}
    """Weights of `loss.*` this method uses when the config leaves them unset (else `LOSS_WEIGHT_DEFAULTS`)."""

    @classmethod
    def config_reads(cls) -> tuple[str, ...]:
        """Every config section or key a trial of this method reads."""
        return EVERY_TRIAL_READS + (TRAINING_READS if cls.trains else ()) + cls.reads

    @classmethod
    def loss_weights(cls, loss: LossConfig) -> dict[str, float]:
        """Each `loss.*_weight`: the config's where set, else this method's default, else CE alone.

        The one place loss defaults are decided: study resolution records these numbers, and the engine trains
        with them, so a config built without resolution trains exactly as its resolved form.
        """
        defaults = {**LOSS_WEIGHT_DEFAULTS, **cls.loss_defaults}
        weights = {
            key: default if getattr(loss, key) is None else getattr(loss, key) for key, default in defaults.items()
        }
        if cls.trains and not any(weights.values()):
            raise ConfigError(f"every loss.*_weight is 0, so {cls.name} would train nothing; set one above 0")
        return weights

    @classmethod
    def with_defaults(cls, cfg: TrialConfig) -> TrialConfig:
        """`cfg` with this method's defaults in the keys it leaves unset (the loss weights)."""
        return cfg.model_copy(update={"loss": cfg.loss.model_copy(update=cls.loss_weights(cfg.loss))})

    def build(self, ctx: BuildContext) -> ImageClassifier:
        raise NotImplementedError

    def loss_terms(self, ctx: BuildContext) -> list[LossTerm]:
        """Loss terms of this method's own, added to the weighted CE and to those `loss.*` asks for (called once
        per trial, before `build`); none by default."""
        return []

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
            cfg.train.decay_norms_and_biases,
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
        head = MLPHead(
            dim,
            ctx.data.num_classes,
            head_cfg.hidden,
            head_cfg.dropout,
            head_cfg.normalize,
            hidden_dropout=head_cfg.hidden_dropout,
        )
    else:
        head = TextHead(ctx.class_embeddings(), ctx.logit_scale(), trainable, head_cfg.dropout, bias=ctx.logit_bias())
    head.requires_grad_(trainable)
    return head.to(ctx.device)


def image_feature_dim(model: nn.Module) -> int:
    dim = getattr(model.visual, "output_dim", None)
    if dim is None:
        raise ConfigError(f"cannot tell the image feature size of {type(model.visual).__name__}")
    return int(dim)


def split_decay(
    name: str, named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float, decay_all: bool = False
) -> list[ParamGroup]:
    """Weight decay on matrices only: biases, norms, embeddings and scales are not decayed; with `decay_all`
    (`train.decay_norms_and_biases`) one group decays every parameter, as `AdamW(model.parameters())` does."""
    if decay_all:
        return [ParamGroup(name, [p for _, p in named], lr, weight_decay)] if named else []
    embeddings = ("class_embedding", "positional_embedding", "token_embedding.weight")
    decay = [p for n, p in named if p.ndim >= 2 and not n.endswith(embeddings)]
    decay_ids = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in decay_ids]
    groups = [ParamGroup(name, decay, lr, weight_decay), ParamGroup(f"{name}.no_decay", rest, lr, 0.0)]
    return [g for g in groups if g.params]
