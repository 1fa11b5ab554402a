"""The trial configuration: every key a study or `--set` may change, with its one default.

The dotted names (`train.lr`, `lora.targets`, ...) are the public contract: studies, overrides,
MLflow params and search spaces all use them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clipstudy.errors import ConfigError, did_you_mean, unknown_name

if TYPE_CHECKING:
    from clipstudy.registry import Registry

LoraTarget = Literal["q", "k", "v", "o", "fc1", "fc2"]
Tower = Literal["vision", "text"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


def registered(kind: str, name: str, registry: Registry) -> str:
    """`name` if the registry has it, else the validation error listing the valid ones (with a did-you-mean)."""
    if name not in registry:
        raise ValueError(str(unknown_name(kind, name, registry.names())))
    return name


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    arch: str = "clipstudy-tiny"
    """An open_clip architecture (`ViT-B-32`, `ViT-B-16-SigLIP`, ...) or an image-only torchvision backbone
    (`torchvision/resnet50`); `clipstudy ls models` lists them."""
    pretrained: str = "none"
    """An open_clip tag (`openai`, `webli`, ...); for torchvision backbones `imagenet` (torchvision's default
    ImageNet weights) or a weights name (`IMAGENET1K_V1`); or a local checkpoint file, or `none`."""
    cache_dir: str | None = None
    image_size: Annotated[int, Field(gt=0)] | None = None
    """Input resolution; None = the architecture's (224 for ViT-B-32 and ResNet50). Only torchvision
    backbones take another size."""

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        from clipstudy.models.names import PACKAGED_ARCHS, known_architectures

        valid = known_architectures(arch)
        if arch not in valid:
            raise ValueError(
                f"unknown architecture '{arch}'{did_you_mean(arch, valid)}; `clipstudy ls models` lists them all "
                f"(open_clip's, the offline {' and '.join(PACKAGED_ARCHS)}, and torchvision/resnet50 and kin)"
            )
        return arch


class DataConfig(Section):
    name: str = "digits"
    root: str = "~/.cache/clipstudy/datasets"
    download: bool = True
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """Held-out test share, used only by datasets that ship no test split (digits, flat ImageFolder)."""
    split_seed: int = 0
    """Seed of the train/val (and test) split; fixed across trials so every trial sees the same split."""
    image_size: Annotated[int, Field(gt=0)] | None = None
    """Size images are decoded to (ImageFolder, synthetic); None = the dataset's own or the model's."""
    num_classes: Annotated[int, Field(ge=2)] = 10
    """Synthetic data only."""
    samples_per_class: Annotated[int, Field(ge=3)] = 60
    """Synthetic data only."""
    feature_cache: bool = True
    """Cache frozen-backbone features on disk (linear probe without augmentation)."""
    cache_dir: str = "~/.cache/clipstudy/features"
    shots: Annotated[int, Field(ge=1)] | None = None
    """Few-shot: k training images per class, drawn after the train/val split (validation keeps
    min(k, 4) per class, the CoOp protocol); None = every training image."""
    shot_seed: Annotated[int, Field(ge=0)] | None = None
    """Seed of the few-shot draw (independent of train.seed); None = `split_seed`. Search or grid it
    to repeat a few-shot experiment over different samples."""
    classes: Literal["all", "base", "new"] = "all"
    """Base-to-new: 'base' trains and tests on the first half of the classes (ceil(C/2), by the
    dataset's label order) and also reports zero-shot accuracy on the other half (test/new_acc,
    test/hm); 'new' keeps only the second half."""

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from clipstudy.data import DATASETS

        return registered("dataset", name, DATASETS)


class HeadConfig(Section):
    kind: Literal["linear", "mlp", "text"] = "linear"
    dropout: Probability = 0.0
    hidden: Annotated[int, Field(gt=0)] = 512
    normalize: bool = False
    """L2-normalise image features before a linear/mlp head (the text head always does)."""


class LoraConfig(Section):
    r: Annotated[int, Field(gt=0)] = 16
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    targets: list[LoraTarget] = Field(default_factory=lambda: ["q", "v"], min_length=1)
    towers: list[Tower] = Field(default_factory=lambda: ["vision"], min_length=1)

    @field_validator("targets", "towers")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be unique, got {value}")
        return value


class TrainConfig(Section):
    epochs: Annotated[int, Field(ge=0)] = 10
    batch_size: Annotated[int, Field(gt=0)] = 128
    eval_batch_size: Annotated[int, Field(gt=0)] | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: Annotated[float, Field(gt=0)] = 1e-3
    backbone_lr: Annotated[float, Field(ge=0)] | None = None
    """Learning rate of trainable backbone weights (full_ft); None = `lr`."""
    head_lr: Annotated[float, Field(ge=0)] | None = None
    """Learning rate of the head; None = `lr` (or see `head_lr_mult`)."""
    head_lr_mult: Annotated[float, Field(gt=0)] | None = None
    """full_ft with `head_lr` unset: the head's lr as a multiple of the backbone's (seed 001's ResNet50: 10)."""
    layer_decay: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Layer-wise lr decay for the backbone: block i of L gets lr * decay**(L - i)."""
    freeze_blocks: Annotated[int, Field(ge=0)] = 0
    """Freeze the patch embedding and the first N vision blocks (full_ft)."""
    weight_decay: NonNegative = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    scheduler: Literal["constant", "cosine", "cosine_restarts"] = "cosine"
    warmup_epochs: NonNegative = 0.0
    t0_epochs: Annotated[float, Field(gt=0)] = 10.0
    """Period of the first cosine cycle of `cosine_restarts` (PyTorch's T_0), in epochs."""
    min_lr: NonNegative = 0.0
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    grad_clip: NonNegative = 0.0
    """Max gradient norm; 0 = no clipping."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU."""
    seed: int = 0
    device: str = "auto"
    select: Literal["best", "last"] = "best"
    """Which epoch's weights are tested: the best on validation, or the last."""


class AugmentConfig(Section):
    """Batched, per-sample augmentation; each op is off at its default (0 / None)."""

    crop_scale: tuple[Probability, Probability] | None = None
    """RandomResizedCrop area range, e.g. [0.8, 1.0]; None = plain resize."""
    hflip: Probability = 0.0
    color_jitter: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Brightness, contrast and saturation strength."""
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    rotation: Annotated[float, Field(ge=0, le=180)] = 0.0
    """Max rotation in degrees."""
    translate: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Max affine translation as a fraction of the image size."""
    erasing: Probability = 0.0
    """RandomErasing probability."""
    erasing_scale: tuple[Probability, Probability] = (0.02, 0.33)
    mixup_alpha: NonNegative = 0.0
    cutmix_alpha: NonNegative = 0.0
    mix_prob: Probability = 0.5
    """Probability that a batch is mixed (Mixup or CutMix, evenly when both are on)."""

    @field_validator("crop_scale", "erasing_scale")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"low must not exceed high, got {list(value)}")
        return value

    @property
    def image_ops(self) -> bool:
        """Whether any per-image op is on (then frozen features cannot be cached)."""
        return bool(
            self.crop_scale
            or self.hflip
            or self.color_jitter
            or self.hue
            or self.rotation
            or self.translate
            or self.erasing
        )

    @property
    def mixing(self) -> bool:
        return self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


class PromptsConfig(Section):
    templates: Literal["ensemble", "single"] = "ensemble"
    """The dataset's template ensemble, or only its first template ('a photo of a {}.')."""


class ProbeConfig(Section):
    solver: Literal["head", "logreg"] = "head"
    """head: the engine trains the head with the optimizer; logreg: the CLIP paper's L-BFGS
    logistic regression with the C sweep selected on validation."""
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [10.0**e for e in range(-3, 4)], min_length=1
    )
    max_iter: Annotated[int, Field(gt=0)] = 1000


class EvalConfig(Section):
    """Extra evaluation after the test split."""

    retention: list[str] = Field(default_factory=list)
    """Datasets on which zero-shot accuracy of the adapted model is compared with the untouched model
    (retention/<name>/acc, zs_acc, delta): forgetting, measured. Read from data.root like `data.name`."""
    retention_per_class: Annotated[int, Field(ge=1)] | None = None
    """Cap on test images per class of each retention dataset (a seeded draw); None = the whole test split."""

    @field_validator("retention")
    @classmethod
    def _known_datasets(cls, names: list[str]) -> list[str]:
        from clipstudy.data import DATASETS

        if len(set(names)) != len(names):
            raise ValueError(f"entries must be unique, got {names}")
        for name in names:
            registered("dataset", name, DATASETS)
        return names


LOSS_WEIGHT_DEFAULTS = {"ce_weight": 1.0, "contrastive_weight": 0.0, "scl_weight": 0.0, "vld_weight": 0.0}
"""The weight of each loss term for a method that declares none of its own (`Method.loss_defaults`)."""


class LossConfig(Section):
    """The training objective: L = ce·CE + contrastive·CLIP + scl·SCL + vld·VLD (seed 004, Eq. 6).

    A weight left unset takes the method's default (resolved when the config is validated, so records
    hold numbers): CE alone for most methods; flyp: contrastive only; clip_cite: CE (DVA with the live
    text classifier) + 0.7·SCL + 0.1·VLD, 004's values. Any method whose towers train can add terms.
    """

    ce_weight: NonNegative | None = None
    """Cross-entropy of the classifier's logits (with a text head: 004's DVA, Eq. 3)."""
    contrastive_weight: NonNegative | None = None
    """CLIP's symmetric in-batch contrastive loss between images and their class prompts (FLYP; with CE:
    seed 002's dual loss). Same-class pairs in a batch count as negatives, as in FLYP."""
    scl_weight: NonNegative | None = None
    """λ: supervised image-text contrastive loss over the batch with class-level texts (004, Eq. 4)."""
    vld_weight: NonNegative | None = None
    """η: KL distillation of in-batch image-text similarities from a frozen copy of the original CLIP (004,
    Eq. 5)."""
    temperature: Annotated[float, Field(gt=0)] | None = None
    """τ of the contrastive and distillation terms; None = CLIP's own (1 / exp(logit_scale))."""


class TokensConfig(Section):
    """A-CLIP-style token masking (seed 002): while training, the image tower sees the class token and only
    the most salient patch tokens; evaluation always sees all of them."""

    keep_ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Share of patch tokens kept during training; 1 = no masking."""
    saliency: Literal["attention", "norm"] = "attention"
    """attention: the class token's attention to each patch in the last block, from a no-grad pass of the
    same tower over all tokens (A-CLIP's choice, with the model itself as the teacher); norm: the L2 norm
    of each patch embedding (free, no extra pass)."""


class WiseConfig(Section):
    """WiSE-FT weight ensembling (seeds 001, 004 Eq. 7), run after the test: every α of the grid evaluates
    θ = (1-α)·θ_original + α·θ_fine-tuned on val and test; the best α is chosen on validation.

    Interpolated: every trained weight that starts from CLIP (both towers, a text head); LoRA scales its
    adapters by α instead. A linear or MLP head starts random, so it keeps its trained weights at every α.
    """

    enabled: bool = False
    alphas: list[Probability] = Field(default_factory=lambda: [i / 10 for i in range(11)], min_length=1)

    @field_validator("alphas")
    @classmethod
    def _distinct_steps(cls, value: list[float]) -> list[float]:
        value = sorted(set(value))
        steps = [round(alpha * 100) for alpha in value]
        if len(set(steps)) != len(steps):
            raise ValueError(f"alphas must differ by at least 0.01 (each is logged at step round(100·α)), got {value}")
        return value


class TrialConfig(Section):
    method: str = "linear_probe"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    wise: WiseConfig = Field(default_factory=WiseConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("method")
    @classmethod
    def _known_method(cls, name: str) -> str:
        from clipstudy.methods import METHODS

        return registered("method", name, METHODS)

    @model_validator(mode="after")
    def _method_loss_defaults(self) -> TrialConfig:
        """Fill the loss weights left unset with the method's defaults; refuse an objective of all zeros."""
        from clipstudy.methods import METHODS

        method = METHODS.get(self.method)
        for key, value in {**LOSS_WEIGHT_DEFAULTS, **method.loss_defaults}.items():
            if getattr(self.loss, key) is None:
                setattr(self.loss, key, value)
        if method.trains and not any(getattr(self.loss, key) for key in LOSS_WEIGHT_DEFAULTS):
            raise ValueError(f"every loss.*_weight is 0, so {self.method} would train nothing; set one above 0")
        return self


def config_keys() -> list[str]:
    """Every dotted key a study or override may set."""
    return sorted(flatten(TrialConfig().model_dump()))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}; lists and tuples stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def expand(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten`; also accepts already-nested values and mixes of both."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' sets a field inside '{part}', which is not a section")
        leaf = parts[-1]
        if isinstance(value, dict):
            value = expand(value)
            if isinstance(node.get(leaf), dict):
                node[leaf] = merge(node[leaf], value)
                continue
        node[leaf] = value
    return tree


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `update` over `base` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """'train.lr=3e-4' -> ('train.lr', 0.0003); values are YAML, so '[q,v]' is a list."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like key=value, e.g. train.lr=3e-4")
    return key.strip(), parse_value(raw)


def parse_value(raw: str) -> Any:
    """A YAML scalar or list; numbers YAML 1.1 leaves as strings (`3e-4`) become floats."""
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def key_problems(flat_keys: list[str]) -> dict[str, str]:
    """Each key that names no config field -> what is wrong with it (with a did-you-mean)."""
    valid = config_keys()
    sections = {k.split(".")[0] for k in valid}
    problems = {}
    for key in flat_keys:
        if key in valid or key == "method":
            continue
        if key in sections:
            problems[key] = f"'{key}' is a section; set one of its fields, e.g. '{key}.*'"
        else:
            problems[key] = f"unknown config key '{key}'{did_you_mean(key, valid)}"
    return problems


def check_keys(flat_keys: list[str], where: str) -> None:
    """Raise one error listing every key that names no config field (with a did-you-mean)."""
    problems = key_problems(flat_keys)
    if problems:
        raise ConfigError("\n".join(f"{where}: {message}" for message in problems.values()))


def validation_message(item: Mapping[str, Any]) -> str:
    """Pydantic's message without its 'Value error, ' prefix (the message is the user's, not Python's)."""
    return str(item["msg"]).removeprefix("Value error, ")


def dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


ConfigLayer = tuple[str, dict[str, Any]]
"""A config layer and where it comes from (`study.yaml: base`, `--set train.lr=1`), for the errors."""


def resolve_config(layers: list[ConfigLayer], where: str) -> TrialConfig:
    """Defaults <- each layer in turn, validated; raises one error with every problem.

    Each problem names the layer that set the offending key (unknown keys and bad values alike), or
    `where` for a problem of the whole config (e.g. a method that refuses the model).
    """
    problems: list[str] = []
    tree: dict[str, Any] = {}
    sources: list[tuple[str, list[str]]] = []
    for label, layer in layers:
        try:
            expanded = expand(layer)
        except ConfigError as error:
            problems.append(f"{label}: {error}")
            continue
        unknown = key_problems(_leaf_keys(expanded))
        problems += [f"{label}: {message}" for message in unknown.values()]
        expanded = _without(expanded, unknown)
        tree = merge(tree, expanded)
        sources.append((label, list(flatten(expanded))))
    try:
        config = TrialConfig.model_validate(tree)
    except ValidationError as error:
        for item in error.errors():
            path = dotted(item["loc"])
            label = _source(path, sources) or where
            problems.append(f"{label}: {path + ': ' if path else ''}{validation_message(item)}")
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return config


def _source(path: str, sources: list[tuple[str, list[str]]]) -> str | None:
    """The last layer that set `path`, a key inside it, or the section or value that holds it."""
    if not path:
        return None
    for label, keys in reversed(sources):
        if any(key == path or key.startswith(f"{path}.") or path.startswith(f"{key}.") for key in keys):
            return label
    return None


def _without(tree: dict[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """`tree` less the leaf keys (`section.field`, or a top-level name) that name no config field."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            kept = {sub: v for sub, v in value.items() if f"{name}.{sub}" not in keys}
            if kept or not value:
                out[name] = kept
        elif name not in keys:
            out[name] = value
    return out


def build_config(*layers: dict[str, Any], overrides: list[str] = (), where: str = "config") -> TrialConfig:
    """Defaults <- each layer (nested or dotted dicts) <- `key=value` overrides, validated."""
    labelled: list[ConfigLayer] = [(where, layer) for layer in layers]
    labelled += override_layers(overrides)
    return resolve_config(labelled, where)


def override_layers(overrides: list[str]) -> list[ConfigLayer]:
    """`--set key=value` overrides as config layers, each named by its text."""
    layers = []
    for text in overrides:
        key, value = parse_override(text)
        layers.append((f"--set {text}", {key: value}))
    return layers


def _leaf_keys(tree: dict[str, Any]) -> list[str]:
    """Dotted keys one level into each section (values that are lists or tuples stay whole)."""
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys.extend(f"{key}.{sub}" for sub in value)
        else:
            keys.append(key)
    return keys


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
