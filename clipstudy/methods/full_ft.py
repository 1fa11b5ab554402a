"""Full fine-tuning: the whole image encoder trains with the head, at its own learning rate."""

from __future__ import annotations

from torch import nn

from clipstudy.config import TrialConfig
from clipstudy.errors import ConfigError
from clipstudy.methods.base import BuildContext, Method, ParamGroup, image_feature_dim, make_head, split_decay
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier

STEM = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "patch_dropout")
TIMM_STEM = ("trunk.patch_embed", "trunk.cls_token", "trunk.reg_token", "trunk.pos_embed")
"""The same for a timm ViT tower (SigLIP), whose blocks are `trunk.blocks.<i>`."""


@METHODS.register("full_ft")
class FullFineTune(Method):
    name = "full_ft"
    description = "image encoder and head train; backbone_lr/head_lr, layer decay, frozen first blocks"
    image_only = True
    reads = (
        "head",
        "tokens",
        "train.backbone_lr",
        "train.head_lr",
        "train.head_lr_mult",
        "train.layer_decay",
        "train.freeze_blocks",
    )

    def build(self, ctx: BuildContext) -> ImageClassifier:
        clip = ctx.built.model.requires_grad_(False)
        head = make_head(ctx, image_feature_dim(clip))
        clip.visual.requires_grad_(True)
        if ctx.cfg.train.layer_decay != 1 and num_blocks(clip.visual) == 0:
            raise ConfigError(
                f"train.layer_decay needs a ViT image encoder; {type(clip.visual).__name__} has no blocks; "
                "leave train.layer_decay at 1.0"
            )
        freeze_first_blocks(clip.visual, ctx.cfg.train.freeze_blocks)
        return ImageClassifier(clip, head)

    def param_groups(self, model: ImageClassifier, cfg: TrialConfig) -> list[ParamGroup]:
        train = cfg.train
        backbone_lr = train.backbone_lr if train.backbone_lr is not None else train.lr
        head_lr = train.head_lr if train.head_lr is not None else train.lr
        if train.head_lr is None and train.head_lr_mult is not None:
            head_lr = train.head_lr_mult * backbone_lr
        decay_all = train.decay_norms_and_biases
        groups = split_decay("head", list(model.head.named_parameters()), head_lr, train.weight_decay, decay_all)
        by_layer: dict[int, list] = {}
        blocks = num_blocks(model.clip.visual)
        for name, param in model.clip.visual.named_parameters():
            if param.requires_grad:
                by_layer.setdefault(layer_id(name, blocks), []).append((name, param))
        for layer, named in sorted(by_layer.items()):
            lr = backbone_lr * train.layer_decay ** (blocks + 1 - layer)
            groups += split_decay(f"backbone.layer{layer}", named, lr, train.weight_decay, decay_all)
        return groups


def num_blocks(visual: nn.Module) -> int:
    transformer = getattr(visual, "transformer", None)
    if transformer is not None:
        return len(transformer.resblocks)
    timm_blocks = getattr(getattr(visual, "trunk", None), "blocks", None)
    return len(timm_blocks) if isinstance(timm_blocks, nn.Sequential | nn.ModuleList) else 0


def layer_id(name: str, blocks: int) -> int:
    """0 for the stem, i+1 for block i, blocks+1 for what follows (ln_post, proj). Non-ViT: all top."""
    if name.startswith(STEM + TIMM_STEM):
        return 0
    if name.startswith(("transformer.resblocks.", "trunk.blocks.")):
        return int(name.split(".")[2]) + 1
    return blocks + 1


def freeze_first_blocks(visual: nn.Module, count: int) -> None:
    if count == 0:
        return
    blocks = num_blocks(visual)
    if blocks == 0:
        raise ConfigError(f"train.freeze_blocks needs a ViT image encoder; {type(visual).__name__} has no blocks")
    if count > blocks:
        raise ConfigError(f"train.freeze_blocks={count} but the image encoder has only {blocks} blocks")
    for name, param in visual.named_parameters():
        if layer_id(name, blocks) <= count:
            param.requires_grad_(False)
