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
    quick_gelu: bool | None = None
    """Whether the model was built with QuickGELU (OpenAI's activation) instead of GELU; None for image-only
    backbones, whose activation is their own."""
    interpolation: str = "bicubic"
    """The resampling of the model's own preprocessing (open_clip's `bicubic`/`bilinear`)."""
    resize_mode: str = "shortest"
    """How the model's own preprocessing fits an image to its input (open_clip's `shortest`, `longest`, `squash`)."""
    build_source: str = ""
    """What the activation and preprocessing were read from: a tag, an `open_clip_config.json`, ..."""
    checkpoint: str | None = None
    """The weights file the model was loaded from (a tag's cached download, a local or packaged file); None for
    random weights or weights a library fetched itself (torchvision's)."""

    @property
    def has_text(self) -> bool:
        return self.tokenizer is not None

    def describe(self) -> dict[str, str]:
        """The resolved build and preprocessing, flat, as recorded with a trial (`model.activation`, ...)."""
        activation = "n/a" if self.quick_gelu is None else "quick_gelu" if self.quick_gelu else "gelu"
        return {
            "model.activation": activation,
            "model.preprocess.image_size": str(self.image_size),
            "model.preprocess.mean": _floats(self.mean),
            "model.preprocess.std": _floats(self.std),
            "model.preprocess.interpolation": self.interpolation,
            "model.preprocess.resize_mode": self.resize_mode,
            "model.preprocess.source": self.build_source,
        }


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(str(float(value)) for value in values)
