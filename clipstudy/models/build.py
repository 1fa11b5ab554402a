"""Build the model a `ModelConfig` names, failing fast (with a fix) when weights or tokenizers are unavailable.

Two kinds of model: any open_clip architecture (CLIP, SigLIP, ... and the tiny offline configs shipped
here), built by `build_clip`, and image-only torchvision backbones (`torchvision/resnet50`), built by
`clipstudy.models.torchvision_backbones`; `build_model` picks by name. Where the weights and the Hugging
Face files come from, and the errors when they cannot be had, is `clipstudy.models.weights`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import open_clip
import torch

import clipstudy.models.tiny_timm  # noqa: F401  (registers the tiny SigLIP vision tower with timm)
from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError, unknown_name
from clipstudy.models.attention import split_attention
from clipstudy.models.built_model import BuiltModel
from clipstudy.models.names import (
    PACKAGED_ARCHS,
    PACKAGED_CONFIG_DIR,
    is_torchvision,
    list_architectures,
    packaged_tags,
    torchvision_architectures,
)
from clipstudy.models.torchvision_backbones import build_torchvision, torchvision_tags
from clipstudy.models.weights import hub_cached, hub_hint, require_hub, resolve_weights

for _arch in PACKAGED_ARCHS:
    if _arch not in open_clip.list_models():
        open_clip.add_model_config(PACKAGED_CONFIG_DIR / f"{_arch}.json")


def describe_architectures() -> list[tuple[str, str, list[str]]]:
    """(name, kind, pretrained tags) of every architecture; kind is clip, siglip or image-only."""
    rows = []
    for arch in open_clip.list_models():
        kind = "siglip" if open_clip.get_model_config(arch).get("init_logit_bias") is not None else "clip"
        rows.append((arch, kind, open_clip.list_pretrained_tags_by_model(arch) + packaged_tags(arch)))
    rows += [(arch, "image-only", torchvision_tags(arch)) for arch in torchvision_architectures()]
    return rows


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Build `cfg.arch`: a torchvision backbone (`torchvision/<name>`) or an open_clip model."""
    if is_torchvision(cfg.arch):
        return build_torchvision(cfg, device)
    return build_clip(cfg, device)


def build_clip(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Create open_clip's `cfg.arch` with weights from `cfg.pretrained` ('none', a local file or an open_clip tag).

    It is built (QuickGELU or GELU) and its preprocessing set as the weights were trained: from the tag, from the
    `open_clip_config.json` beside a local file, or from `cfg.pretrained_tag` (see `weights.resolve_weights`).
    """
    arch = cfg.arch
    if arch not in open_clip.list_models():
        raise unknown_name("architecture", arch, list_architectures(), ModelError)
    model_cfg = open_clip.get_model_config(arch)
    native_size = _square_size(model_cfg["vision_cfg"].get("image_size", 224))
    if cfg.image_size not in (None, native_size):
        raise ModelError(
            f"model.image_size={cfg.image_size}, but '{arch}' takes {native_size} px inputs only; "
            "leave model.image_size unset (other sizes suit torchvision/* backbones)"
        )
    source = resolve_weights(arch, cfg.pretrained, cfg.cache_dir, cfg.pretrained_tag)
    hf_text_model = model_cfg.get("text_cfg", {}).get("hf_model_name")
    if hf_text_model and not hub_cached(hf_text_model, "config.json", None):
        require_hub(
            f"the Hugging Face text model '{hf_text_model}' that '{arch}' builds its text tower from", hf_text_model
        )
    root = logging.getLogger()
    if source.checkpoint is None:  # `pretrained: none` asks for random weights: open_clip's warning says nothing new
        root.addFilter(_drop_random_init_warning)
    try:
        model = open_clip.create_model(
            arch,
            pretrained=source.checkpoint,
            device=device,
            force_quick_gelu=source.quick_gelu,
            force_preprocess_cfg=source.preprocess,
            cache_dir=cfg.cache_dir,
        )
    except (RuntimeError, ValueError, KeyError, OSError) as error:
        raise ModelError(f"cannot build '{arch}' with pretrained='{cfg.pretrained}': {error}") from error
    finally:
        root.removeFilter(_drop_random_init_warning)
    split_attention(model)
    if getattr(model.visual, "output_dim", None) is None:  # timm towers (SigLIP) do not say; CLIP's contract
        model.visual.output_dim = int(model_cfg["embed_dim"])  # is image features of the joint embed size
    model.eval()
    preprocess = getattr(model.visual, "preprocess_cfg", None) or {}
    return BuiltModel(
        model=model,
        tokenizer=make_tokenizer(arch, cfg.cache_dir),
        image_size=_square_size(preprocess.get("size", model.visual.image_size)),
        mean=tuple(preprocess.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(preprocess.get("std", open_clip.OPENAI_DATASET_STD)),
        arch=arch,
        pretrained=cfg.pretrained,
        quick_gelu=source.quick_gelu,
        interpolation=str(preprocess.get("interpolation", "bicubic")),
        resize_mode=str(preprocess.get("resize_mode", "shortest")),
        build_source=source.origin,
        checkpoint=source.checkpoint,
    )


def make_tokenizer(arch: str, cache_dir: str | None = None) -> Callable[[list[str]], torch.Tensor]:
    """open_clip's tokenizer for `arch`; one that lives on the Hugging Face Hub (SigLIP's) loads on first use."""
    text_cfg = open_clip.get_model_config(arch).get("text_cfg", {})
    hub_name = text_cfg.get("hf_tokenizer_name")
    if hub_name:
        return HubTokenizer(arch, hub_name, cache_dir)
    if arch in PACKAGED_ARCHS:  # open_clip would pick SigLIP's (downloaded) tokenizer for a name with 'siglip'
        return open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
    return open_clip.get_tokenizer(arch, cache_dir=cache_dir)


class HubTokenizer:
    """The tokenizer of an architecture whose tokenizer files live on the Hugging Face Hub (SigLIP).

    Loaded on first call: only methods that read class prompts tokenize, so an uncached tokenizer does
    not stop a fine-tune with a linear head. When it is needed but neither cached nor reachable, the
    first call raises a ModelError within seconds (transformers would retry for about a minute).
    """

    def __init__(self, arch: str, repo_id: str, cache_dir: str | None = None):
        self.arch, self.repo_id, self.cache_dir = arch, repo_id, cache_dir
        self._tokenizer: Callable[[list[str]], torch.Tensor] | None = None

    def __call__(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            self._tokenizer = self._load()
        return self._tokenizer(texts)

    def _load(self) -> Callable[[list[str]], torch.Tensor]:
        cached = hub_cached(self.repo_id, "tokenizer_config.json", self.cache_dir)
        if not cached:
            require_hub(f"the tokenizer '{self.repo_id}' of '{self.arch}'", self.repo_id)
        offline = {"local_files_only": True} if cached else {}
        try:
            return open_clip.get_tokenizer(self.arch, cache_dir=self.cache_dir, **offline)
        except (OSError, ValueError, ImportError) as error:
            raise ModelError(
                f"cannot load the tokenizer '{self.repo_id}' of '{self.arch}': {error}; {hub_hint(self.repo_id)}"
            ) from error


def _drop_random_init_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No pretrained weights loaded")


def _square_size(size: int | tuple[int, int] | list[int]) -> int:
    if isinstance(size, int):
        return size
    if len(set(size)) != 1:
        raise ModelError(f"non-square input size {tuple(size)} is not supported")
    return int(size[0])
