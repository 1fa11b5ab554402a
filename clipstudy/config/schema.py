"""The trial configuration: every section, every key, its one default and what it means.

The dotted names (`train.lr`, `lora.targets`, ...) are the public contract: studies, overrides, MLflow
params and search spaces all use them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clipstudy.config.fields import LoraTarget, NonNegative, Probability, Tower, Unique, registered


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    arch: Annotated[str, registered("architecture")] = "clipstudy-tiny"
    """An open_clip architecture (`ViT-B-32`, `ViT-B-16-SigLIP`, ...) or an image-only torchvision backbone
    (`torchvision/resnet50`); `clipstudy ls models` lists them."""
    pretrained: str = "none"
    """An open_clip tag (`openai`, `webli`, ...); for torchvision backbones `imagenet` (torchvision's default
    ImageNet weights) or a weights name (`IMAGENET1K_V1`); or a local checkpoint file, or `none`."""
    pretrained_tag: str | None = None
    """For a local checkpoint file with no `open_clip_config.json` beside it: the open_clip tag whose build
    (QuickGELU or not) and preprocessing (mean, std, interpolation) the file's weights were trained with,
    e.g. `openai` for OpenAI's ViT-B-32. None = read `open_clip_config.json`, or the architecture's own
    when all its tags agree."""
    cache_dir: str | None = None
    image_size: Annotated[int, Field(gt=0)] | None = None
    """Input resolution; None = the architecture's (224 for ViT-B-32 and ResNet50). Only torchvision
    backbones take another size."""
    weights_dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """dtype the backbone's weights are held (and updated) in. fp32 with autocast is the usual mixed
    precision; fp16/bf16 halve the weights' memory, and updates smaller than the dtype's resolution are
    lost, as with OpenAI's `clip.load` on CUDA (fp16). Heads and LoRA adapters stay fp32."""
    interpolation: Literal["auto", "bicubic", "bilinear"] = "auto"
    """Resampling of the resize to the model's input size; auto = the model's preprocessing (bicubic for
    open_clip's CLIP weights)."""


class DataConfig(Section):
    name: Annotated[str, registered("dataset")] = "digits"
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
    image_key: str | None = None
    """webdataset: the image member's extensions, `;`-separated (None = jpg;jpeg;png;webp); hf: the image
    column (None = image)."""
    label_key: str | None = None
    """webdataset: the label member's extension (None = cls, an integer as text); hf: the label column (None =
    label; a ClassLabel column also names the classes)."""
    val_root: str | None = None
    """webdataset: the validation shards (a brace pattern like `root`); None = held out from the train shards."""
    test_root: str | None = None
    """webdataset: the test shards; None = held out from the train shards."""
    feature_cache: bool = True
    """Cache frozen-backbone features on disk (linear probe without augmentation)."""
    cache_dir: str = "~/.cache/clipstudy/features"
    """The feature cache, and under `stores/` the decoded-image stores (on a cluster: each node's local disk)."""
    store: bool = True
    """Decode image files (ImageFolder, WebDataset shards, the file-based torchvision sets) once per machine into
    a memory-mapped store under `cache_dir/stores`, which every trial then opens instead of decoding; False =
    decode into each trial's memory."""
    store_size: Annotated[int, Field(gt=0)] | None = None
    """Size the train split's files are stored at when random crops are on (`augment.crop_scale`); None = the
    model's size x 8/7 (256 for 224). Validation and test are stored at the model's size, preprocessed
    exactly as open_clip does."""
    shots: Annotated[int, Field(ge=1)] | None = None
    """Few-shot: k training images per class, drawn after the train/val split (validation keeps
    min(k, 4) per class, the protocol of CoOp, Zhou et al. 2022); None = every training image."""
    shot_seed: Annotated[int, Field(ge=0)] | None = None
    """Seed of the few-shot draw (independent of train.seed); None = `split_seed`. Search or grid it
    to repeat a few-shot experiment over different samples."""
    classes: Literal["all", "base", "new"] = "all"
    """Base-to-new: 'base' trains and tests on the first half of the classes (ceil(C/2), by the
    dataset's label order) and also reports zero-shot accuracy on the other half (test/new_acc,
    test/hm); 'new' keeps only the second half."""


class HeadConfig(Section):
    kind: Literal["linear", "mlp", "text"] = "linear"
    dropout: Probability = 0.0
    """Dropout on the head's input features (and, for an MLP head with `hidden_dropout` unset, on its hidden
    layer)."""
    hidden_dropout: Probability | None = None
    """Dropout after the MLP head's hidden layer; None = `dropout`."""
    hidden: Annotated[int, Field(gt=0)] = 512
    normalize: bool = False
    """L2-normalise image features before a linear/mlp head (the text head always does)."""


class LoraConfig(Section):
    r: Annotated[int, Field(gt=0)] = 16
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    targets: Annotated[list[LoraTarget], Field(min_length=1), Unique] = Field(default_factory=lambda: ["q", "v"])
    towers: Annotated[list[Tower], Field(min_length=1), Unique] = Field(default_factory=lambda: ["vision"])
    init: Literal["default", "gaussian"] = "default"
    """Adapter initialisation, peft's `init_lora_weights`: default = A Kaiming-uniform, gaussian = A drawn
    from a normal with std 1/r (peft's; LoRA's paper and seed 003 draw A Gaussian). B starts at zero
    either way, so training starts from W0."""


class TrainConfig(Section):
    epochs: Annotated[int, Field(ge=0)] = 10
    batch_size: Annotated[int, Field(gt=0)] = 128
    eval_batch_size: Annotated[int, Field(gt=0)] | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    adam_eps: Annotated[float, Field(gt=0)] = 1e-8
    """AdamW's eps. fp16 weights (`model.weights_dtype: fp16`) need at least 1e-6: 1e-8 is 0 in fp16."""
    lr: Annotated[float, Field(gt=0)] = 1e-3
    backbone_lr: Annotated[float, Field(ge=0)] | None = None
    """Learning rate of trainable backbone weights (full_ft); None = `lr`."""
    head_lr: Annotated[float, Field(ge=0)] | None = None
    """Learning rate of the head; None = `lr` (or see `head_lr_mult`)."""
    head_lr_mult: Annotated[float, Field(gt=0)] | None = None
    """full_ft with `head_lr` unset: the head's lr as a multiple of the backbone's (e.g. 10 for an ImageNet
    ResNet50 fine-tuned with a new head)."""
    layer_decay: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Layer-wise lr decay for the backbone: block i of L gets lr * decay**(L - i)."""
    freeze_blocks: Annotated[int, Field(ge=0)] = 0
    """Freeze the patch embedding and the first N vision blocks (full_ft)."""
    weight_decay: NonNegative = 0.01
    decay_norms_and_biases: bool = False
    """Apply weight decay to biases, norm weights and embeddings too (as `AdamW(model.parameters())` does);
    False = decay only weight matrices, the usual choice."""
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    scheduler: Literal["constant", "cosine", "cosine_restarts"] = "cosine"
    warmup_epochs: NonNegative = 0.0
    t0_epochs: Annotated[float, Field(gt=0)] = 10.0
    """Period of the first cosine cycle of `cosine_restarts` (PyTorch's T_0), in epochs."""
    t_mult: Annotated[int, Field(ge=1)] = 1
    """Each `cosine_restarts` cycle is t_mult times longer than the one before (PyTorch's T_mult)."""
    eta_min: NonNegative = 0.0
    """The learning rate cosine schedules decay to (PyTorch's eta_min), the same for every group."""
    scheduler_step: Literal["step", "epoch"] = "step"
    """Update the learning rate after every optimizer step, or once per epoch (as
    `scheduler.step()` at the end of each epoch does in most notebooks; warm-up is then per epoch too)."""
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    grad_clip: NonNegative = 0.0
    """Max gradient norm; 0 = no clipping."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU."""
    seed: int = 0
    device: str = "auto"
    select: Literal["best", "last"] = "best"
    """Which epoch's weights are tested: the best on validation, or the last."""
    compile: bool = False
    """torch.compile every transformer block of the towers in place (regional compilation: one compiled graph
    serves all the blocks of a tower, and the weights keep their names). Pays on a GPU over long trials; the
    first steps of a trial, and of its evaluation, wait for compilation (tens of seconds)."""
    fused_optimizer: bool | None = None
    """AdamW's fused kernel (one launch updates every parameter); None = on a GPU, off on CPU. The same
    updates, up to rounding."""
    attention: Literal["auto", "math"] = "auto"
    """scaled_dot_product_attention's kernels: auto = flash or memory-efficient where the inputs allow (no
    mask in the vision tower); math = the reference implementation, slower, for debugging."""
    prefetch: Annotated[int, Field(ge=0)] = 2
    """Batches gathered ahead in background threads, into pinned memory, and copied to the GPU on a side
    stream, when a split streams from host memory (too large to be held on the GPU); 0 = gather and copy
    inside the step."""


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
    custom: Annotated[list[str], Field(min_length=1), Unique] | None = None
    """Templates to use instead of the dataset's, each with one `{}` for the class name, e.g.
    `["a photo of a {}"]`; `templates` then picks among these."""
    classnames: Literal["readable", "raw"] | Annotated[list[str], Field(min_length=2)] = "readable"
    """The class names in the prompts: `readable` = the dataset's cleaned names ('aquarium fish');
    `raw` = its names as stored (torchvision's `classes`, the folder names: 'aquarium_fish'); or a list,
    one name per class in label order."""
    train_templates: Literal["sample", "first", "all"] = "sample"
    """Prompts a training step encodes when the text tower trains: `sample` = one template per class,
    drawn each step (seeded); `first` = the first template; `all` = every template (cost x templates).
    Evaluation always uses the whole set `templates` names."""

    @field_validator("classnames", mode="before")
    @classmethod
    def _names_or_mode(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("readable", "raw"):
            raise ValueError(f"got {value!r}: use 'readable', 'raw' or a list with one name per class")
        return value

    @field_validator("custom")
    @classmethod
    def _one_slot(cls, value: list[str] | None) -> list[str] | None:
        for template in value or []:
            if template.count("{}") != 1:
                raise ValueError(f"each template needs exactly one '{{}}' for the class name, got {template!r}")
        return value


class ProbeConfig(Section):
    solver: Literal["head", "logreg"] = "head"
    """head: the engine trains the head with the optimizer; logreg: the L-BFGS logistic regression of the
    CLIP paper (Radford et al. 2021), its C swept and selected on validation."""
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [10.0**e for e in range(-3, 4)], min_length=1
    )
    max_iter: Annotated[int, Field(gt=0)] = 1000


class EvalConfig(Section):
    """Extra evaluation after the test split."""

    retention: Annotated[list[str], Unique, registered("dataset")] = Field(default_factory=list)
    """Datasets on which zero-shot accuracy of the adapted model is compared with the untouched model
    (retention/<name>/acc, zs_acc, delta): forgetting, measured. Read from data.root like `data.name`."""
    retention_per_class: Annotated[int, Field(ge=1)] | None = None
    """Cap on test images per class of each retention dataset (a seeded draw); None = the whole test split."""


class LossConfig(Section):
    """The training objective: L = ce·CE + contrastive·CLIP + scl·SCL + vld·VLD (CLIP-CITE, Liu et al. 2024,
    Eq. 6).

    A weight left unset (None) takes the method's default (`Method.loss_defaults`), filled in when a study
    resolves the config, so records hold numbers: CE alone unless the method says otherwise (FLYP: the
    contrastive loss alone; CLIP-CITE: CE + 0.7·SCL + 0.1·VLD, the paper's λ and η). Any method whose towers
    train can add terms.
    """

    ce_weight: NonNegative | None = None
    """Cross-entropy of the classifier's logits (with a text head: CLIP-CITE's DVA, Eq. 3)."""
    contrastive_weight: NonNegative | None = None
    """CLIP's symmetric in-batch contrastive loss between images and their class prompts (FLYP, Goyal et al.
    2023; with CE as well: a joint classification and contrastive objective). Same-class pairs in a batch
    count as negatives, as in FLYP."""
    scl_weight: NonNegative | None = None
    """λ: supervised image-text contrastive loss over the batch with class-level texts (CLIP-CITE, Eq. 4)."""
    vld_weight: NonNegative | None = None
    """η: KL distillation of in-batch image-text similarities from a frozen copy of the original CLIP
    (CLIP-CITE, Eq. 5)."""
    temperature: Annotated[float, Field(gt=0)] | None = None
    """τ of the contrastive and distillation terms; None = CLIP's own (1 / exp(logit_scale))."""


class TokensConfig(Section):
    """Token masking in the style of A-CLIP (Yang et al. 2023, Attentive Mask CLIP): while training, the image
    tower sees the class token and only the most salient patch tokens; evaluation always sees all of them."""

    keep_ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Share of patch tokens kept during training; 1 = no masking."""
    saliency: Literal["attention", "norm"] = "attention"
    """attention: the class token's attention to each patch in the last block, from a no-grad pass of the
    same tower over all tokens (A-CLIP's choice, with the model itself as the teacher); norm: the L2 norm
    of each patch embedding (free, no extra pass)."""


class WiseConfig(Section):
    """WiSE-FT weight ensembling (Wortsman et al. 2022; CLIP-CITE, Eq. 7), run after the test: every α of the
    grid evaluates θ = (1-α)·θ_original + α·θ_fine-tuned on val and test; the best α is chosen on validation.

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
    """One trial: the method and every section. Registry names are checked, and the method's loss defaults
    filled in, when `clipstudy.studyfile` resolves it."""

    method: Annotated[str, registered("method")] = "linear_probe"
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
