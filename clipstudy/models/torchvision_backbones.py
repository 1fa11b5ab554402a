"""Image-only torchvision backbones (`model.arch: torchvision/resnet50`): the ImageNet ResNet50 baseline CLIP and
WiSE-FT compare against.

The ImageNet classifier (`fc`) is removed; the methods put their own head on the pooled features, exactly
as on a CLIP image tower, so the baseline trains through the same engine and methods (full_ft, linear_probe).
The wrapper has CLIP's image-side interface (`visual` with `output_dim`, `encode_image`) and no text
tower: methods that need class prompts refuse it.

Weights come from torchvision (`pretrained: imagenet` = the architecture's default weights, IMAGENET1K_V2
for ResNet50, or a weights name such as `IMAGENET1K_V1`), a local state-dict file, or `none` (random).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file
from torch import nn
from torchvision.models import WeightsEnum

from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError, unknown_name
from clipstudy.models import weights as weight_lookup
from clipstudy.models.built_model import BuiltModel
from clipstudy.models.names import TORCHVISION_PREFIX as PREFIX
from clipstudy.models.names import list_architectures, torchvision_architectures

IMAGENET_TAG = "imagenet"


class ImageOnlyModel(nn.Module):
    """A backbone shaped like an open_clip model's image side: `visual` (with `output_dim`) and `encode_image`."""

    def __init__(self, visual: nn.Module, output_dim: int):
        super().__init__()
        self.visual = visual
        self.visual.output_dim = output_dim

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.visual(images)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def torchvision_tags(arch: str) -> list[str]:
    weights = torchvision.models.get_model_weights(arch.removeprefix(PREFIX))
    return [IMAGENET_TAG, *(w.name for w in weights)]


def build_torchvision(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Create the backbone with its ImageNet head replaced by an identity; features are the pooled map."""
    if cfg.arch not in torchvision_architectures():
        raise unknown_name("architecture", cfg.arch, list_architectures(), ModelError)
    if cfg.pretrained_tag:
        raise ModelError(
            f"model.pretrained_tag '{cfg.pretrained_tag}' names the open_clip tag a local file is built as, and "
            f"'{cfg.arch}' is a torchvision backbone: remove model.pretrained_tag"
        )
    name = cfg.arch.removeprefix(PREFIX)
    weights = _weights(cfg.arch, cfg.pretrained)
    net = torchvision.models.get_model(name)
    state = _state_dict(cfg, weights)
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise ModelError(
                f"model.pretrained: '{cfg.pretrained}' does not hold {name}'s ImageNet state dict: {error}"
            ) from error
    output_dim = net.fc.in_features
    net.fc = nn.Identity()
    preprocessing = weights or torchvision.models.get_model_weights(name).DEFAULT
    transform = preprocessing.transforms()
    model = ImageOnlyModel(net, output_dim).to(device).eval()
    return BuiltModel(
        model=model,
        tokenizer=None,
        image_size=cfg.image_size or int(transform.crop_size[0]),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        arch=cfg.arch,
        pretrained=cfg.pretrained,
        quick_gelu=None,
        interpolation=transform.interpolation.value,
        resize_mode="shortest",
        build_source=f"torchvision's {preprocessing} transforms",
    )


def _weights(arch: str, pretrained: str) -> WeightsEnum | None:
    """The torchvision weights a tag names; None for random weights or a local file."""
    tag = pretrained.strip()
    if tag.lower() in ("", "none") or Path(tag).expanduser().is_file():
        return None
    enum = torchvision.models.get_model_weights(arch.removeprefix(PREFIX))
    if tag.lower() == IMAGENET_TAG:
        return enum.DEFAULT
    if tag in enum.__members__:
        return enum[tag]
    if os.sep in tag or tag.endswith((".pt", ".pth", ".safetensors")):
        raise ModelError(f"model.pretrained: no such checkpoint file '{Path(tag).expanduser()}'")
    raise ModelError(
        f"unknown pretrained tag '{tag}' for '{arch}'; valid: {', '.join(torchvision_tags(arch))}, "
        "a local checkpoint file, or 'none' for random weights"
    )


def _state_dict(cfg: ModelConfig, weights: WeightsEnum | None) -> dict[str, torch.Tensor] | None:
    tag = cfg.pretrained.strip()
    if weights is None:
        if tag.lower() in ("", "none"):
            return None
        path = Path(tag).expanduser()
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    model_dir = Path(cfg.cache_dir or Path(torch.hub.get_dir()) / "checkpoints").expanduser()
    hint = (
        f"download {weights.url} on a machine with internet into {model_dir} (or anywhere, and set "
        "model.pretrained to the local file)"
    )
    if not (model_dir / os.path.basename(weights.url)).is_file() and not weight_lookup.reachable(weights.url):
        raise ModelError(
            f"weights '{tag}' ({weights}) for '{cfg.arch}' are not cached and {weights.url} is unreachable "
            f"(no network?); {hint}"
        )
    try:
        return weights.get_state_dict(progress=False, model_dir=str(model_dir))
    except Exception as error:  # torch.hub raises URLError, HTTPError, RuntimeError (hash), ...
        raise ModelError(f"could not fetch weights '{tag}' for '{cfg.arch}': {error}; {hint}") from error
