"""What building a model returns, whichever builder made it (open_clip's or torchvision's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class BuiltModel:
    model: torch.nn.Module
    """The model, in eval mode: open_clip's (attention already split, see `attention.split_attention`) or
    an image-only backbone; both expose `visual` (with `output_dim`) and `encode_image`."""
    tokenizer: Callable[[list[str]], torch.Tensor] | None
    """None for image-only backbones, which have no text tower."""
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch: str
    pretrained: str

    @property
    def has_text(self) -> bool:
        return self.tokenizer is not None
