"""Analytic FLOP counts of a CLIP tower, read off the built model (so custom configs count too).

A transformer block over T tokens of width d with an MLP of hidden width h costs, in multiply-adds,
4·T·d² (q, k, v and out projections) + 2·T·d·h (the MLP) + 2·T²·d (scores and the weighted sum); a ViT adds
its patch embedding (grid · 3·p² · d) and the projection to the embedding. ViT-B/32 at 224 px comes to
4.41 GMACs an image, ViT-B/16 to 17.6. A FLOP is half a multiply-add. Training costs a forward pass, the
gradient with respect to the activations (about one more) and, for every trained weight, the gradient with
respect to that weight (about one more): 3x forward for full fine-tuning, about 2x for LoRA and other
frozen-backbone methods (their adapters' own gradients are negligible). Norms, activations, softmax and
augmentation are left out, so utilisation figures from these counts are slight underestimates.
"""

from __future__ import annotations

from torch import nn


def block_macs(tokens: int, width: int, hidden: int) -> float:
    return 4 * tokens * width**2 + 2 * tokens * width * hidden + 2 * tokens**2 * width


def _blocks(transformer: nn.Module) -> tuple[int, int]:
    """(number of blocks, MLP hidden width) of an open_clip transformer."""
    blocks = transformer.resblocks
    return len(blocks), blocks[0].mlp.c_fc.out_features


def vision_macs(clip: nn.Module) -> float:
    """Multiply-adds of one image through open_clip's vision tower (ViT)."""
    visual = clip.visual
    patch, width = visual.conv1.kernel_size[0], visual.conv1.out_channels
    tokens = visual.positional_embedding.shape[0]
    layers, hidden = _blocks(visual.transformer)
    projection = width * visual.proj.shape[1] if getattr(visual, "proj", None) is not None else 0
    return (tokens - 1) * 3 * patch * patch * width + layers * block_macs(tokens, width, hidden) + projection


def text_macs(clip: nn.Module) -> float:
    """Multiply-adds of one prompt through open_clip's text tower (all context positions are computed)."""
    tokens, width = clip.positional_embedding.shape
    layers, hidden = _blocks(clip.transformer)
    return layers * block_macs(tokens, width, hidden) + width * clip.text_projection.shape[1]


def train_flops_per_image(clip: nn.Module, trains_backbone: bool, prompts_per_step: int = 0, batch: int = 1) -> float:
    """FLOPs of one training image: forward + backward of the vision tower (3x forward when its weights
    train, 2x when only adapters or a head do), plus its share of the step's prompts through the text tower
    (a text head recomputed every step, with adapters there: 2x forward)."""
    vision = 2 * vision_macs(clip) * (3 if trains_backbone else 2)
    text = 2 * text_macs(clip) * 2 * prompts_per_step / batch if prompts_per_step else 0.0
    return vision + text
