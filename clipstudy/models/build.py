"""Build the model a `ModelConfig` names, failing fast (with a fix) when weights or tokenizers are unavailable.

Two kinds of model: any open_clip architecture (CLIP, SigLIP, ... and the tiny offline configs shipped
here), built by `build_clip`, and image-only torchvision backbones (`torchvision/resnet50`), built by
`clipstudy.models.torchvision_backbones`; `build_model` picks by name.

open_clip retries a missing download for about a minute before raising; here a pretrained tag is first
looked up in the local caches, and only if it is missing is the network probed (3 s) before fetching.
The same holds for the Hugging Face files some architectures need besides weights (SigLIP's tokenizer,
an HF text tower's config).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

import open_clip
import torch
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

import clipstudy.models.tiny_timm  # noqa: F401  (registers the tiny SigLIP vision tower with timm)
from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError, unknown_name
from clipstudy.models.attention import split_attention
from clipstudy.models.names import (
    PACKAGED_ARCHS,
    PACKAGED_CONFIG_DIR,
    is_torchvision,
    torchvision_architectures,
)

_PROBE_TIMEOUT_S = 3.0
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")

for _arch in PACKAGED_ARCHS:
    if _arch not in open_clip.list_models():
        open_clip.add_model_config(PACKAGED_CONFIG_DIR / f"{_arch}.json")


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


def list_architectures() -> list[str]:
    return [*open_clip.list_models(), *torchvision_architectures()]


def describe_architectures() -> list[tuple[str, str, list[str]]]:
    """(name, kind, pretrained tags) of every architecture; kind is clip, siglip or image-only."""
    from clipstudy.models.torchvision_backbones import torchvision_tags

    rows = []
    for arch in open_clip.list_models():
        kind = "siglip" if open_clip.get_model_config(arch).get("init_logit_bias") is not None else "clip"
        rows.append((arch, kind, open_clip.list_pretrained_tags_by_model(arch)))
    rows += [(arch, "image-only", torchvision_tags(arch)) for arch in torchvision_architectures()]
    return rows


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Build `cfg.arch`: a torchvision backbone (`torchvision/<name>`) or an open_clip model."""
    from clipstudy.models.torchvision_backbones import build_torchvision

    if is_torchvision(cfg.arch):
        return build_torchvision(cfg, device)
    return build_clip(cfg, device)


def build_clip(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Create open_clip's `cfg.arch` with weights from `cfg.pretrained` ('none', a local file or an open_clip tag)."""
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
    checkpoint, tag_cfg = _resolve_weights(arch, cfg.pretrained, cfg.cache_dir)
    hf_text_model = model_cfg.get("text_cfg", {}).get("hf_model_name")
    if hf_text_model and not _hub_cached(hf_text_model, "config.json", None):
        _require_hub(
            f"the Hugging Face text model '{hf_text_model}' that '{arch}' builds its text tower from", hf_text_model
        )
    force_preprocess = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if tag_cfg.get(k) is not None}
    root = logging.getLogger()
    if checkpoint is None:  # `pretrained: none` asks for random weights: open_clip's warning says nothing new
        root.addFilter(_drop_random_init_warning)
    try:
        model = open_clip.create_model(
            arch,
            pretrained=checkpoint,
            device=device,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=force_preprocess,
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
        cached = _hub_cached(self.repo_id, "tokenizer_config.json", self.cache_dir)
        if not cached:
            _require_hub(f"the tokenizer '{self.repo_id}' of '{self.arch}'", self.repo_id)
        offline = {"local_files_only": True} if cached else {}
        try:
            return open_clip.get_tokenizer(self.arch, cache_dir=self.cache_dir, **offline)
        except (OSError, ValueError, ImportError) as error:
            raise ModelError(
                f"cannot load the tokenizer '{self.repo_id}' of '{self.arch}': {error}; {_hub_hint(self.repo_id)}"
            ) from error


def _hub_cached(repo_id: str, filename: str, cache_dir: str | None) -> bool:
    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)


def _hub_hint(repo_id: str) -> str:
    return (
        f"on a machine with internet run `huggingface-cli download {repo_id}` and copy its Hugging Face cache "
        "(~/.cache/huggingface, or $HF_HOME) here"
    )


def _require_hub(what: str, repo_id: str) -> None:
    """Raise a ModelError within seconds when the Hub cannot be reached for `what` (which is not cached)."""
    if _env_flag("HF_HUB_OFFLINE"):
        raise ModelError(f"{what} is not cached and HF_HUB_OFFLINE is set; {_hub_hint(repo_id)}")
    url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not reachable(url):
        raise ModelError(f"{what} is not cached and {url} is unreachable (no network?); {_hub_hint(repo_id)}")


def _drop_random_init_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No pretrained weights loaded")


def _square_size(size: int | tuple[int, int] | list[int]) -> int:
    if isinstance(size, int):
        return size
    if len(set(size)) != 1:
        raise ModelError(f"non-square input size {tuple(size)} is not supported")
    return int(size[0])


def _resolve_weights(arch: str, pretrained: str, cache_dir: str | None) -> tuple[str | None, dict]:
    """Return (checkpoint file or None for random init, the tag's open_clip pretrained config)."""
    if pretrained.strip().lower() in ("", "none"):
        return None, {}
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path), {}
    tags = open_clip.list_pretrained_tags_by_model(arch)
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        if path.suffix in _CHECKPOINT_SUFFIXES or os.sep in pretrained:
            raise ModelError(f"model.pretrained: no such checkpoint file '{path}'")
        valid = ", ".join(tags) if tags else "(none: this architecture has no published weights)"
        raise ModelError(
            f"unknown pretrained tag '{pretrained}' for '{arch}'; valid tags: {valid}; "
            "or set model.pretrained to a local checkpoint file, or 'none' for random weights"
        )
    cached = _cached_checkpoint(tag_cfg, cache_dir)
    if cached:
        return cached, tag_cfg
    return _download(arch, pretrained, tag_cfg, cache_dir), tag_cfg


def _hf_source(tag_cfg: dict) -> tuple[str, list[str]] | None:
    """(repo id, candidate filenames, safetensors first), as open_clip's `download_pretrained` has them."""
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    candidates = [filename]
    if filename == HF_WEIGHTS_NAME:
        candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.insert(0, filename[:-4] + ".safetensors")
    return repo_id, candidates


def _cached_checkpoint(tag_cfg: dict, cache_dir: str | None) -> str | None:
    """The tag's weights file if a previous download left it in the HF cache or open_clip's URL cache."""
    if tag_cfg.get("file"):
        return tag_cfg["file"]
    source = _hf_source(tag_cfg)
    if source:
        from huggingface_hub import hf_hub_download

        repo_id, candidates = source
        for filename in candidates:
            try:
                return hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=True)
            except OSError:  # LocalEntryNotFoundError: not cached
                continue
    url = tag_cfg.get("url", "")
    if url:
        candidate = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def _download(arch: str, tag: str, tag_cfg: dict, cache_dir: str | None) -> str:
    """Fetch the tag's weights with open_clip, after checking within seconds that the host is reachable."""
    source = _hf_source(tag_cfg)
    if source:
        where = f"the Hugging Face Hub repo '{source[0]}'"
        hint = f"`huggingface-cli download {source[0]}`"
        url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        offline = _env_flag("HF_HUB_OFFLINE")
    else:
        url = tag_cfg.get("url", "")
        where = url
        hint = f"download {url}"
        offline = False
    hint = (
        f"download them on a machine with internet (e.g. {hint}, or open_clip.create_model('{arch}', "
        f"pretrained='{tag}')), then point model.pretrained at the local file "
        "(model.pretrained: /path/to/checkpoint)"
    )
    if offline:
        raise ModelError(f"weights '{tag}' for '{arch}' are not cached and HF_HUB_OFFLINE is set; {hint}")
    if not reachable(url):
        raise ModelError(
            f"weights '{tag}' for '{arch}' are not cached and {where} is unreachable (no network?); {hint}"
        )
    try:
        return open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
    except Exception as error:  # open_clip wraps every hub/HTTP failure differently
        raise ModelError(f"could not fetch weights '{tag}' for '{arch}' from {where}: {error}; {hint}") from error


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def reachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host (or the proxy in use) opens within `timeout` seconds.

    Runs in a daemon thread so that a hanging DNS lookup cannot exceed the timeout either.
    """
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (80 if parsed.scheme == "http" else 443)
    proxy = getproxies().get(parsed.scheme) or getproxies().get("all")
    if proxy and not proxy_bypass(host):
        proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname or "", proxy_url.port or 80
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])
