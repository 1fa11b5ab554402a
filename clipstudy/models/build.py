"""Build an open_clip model from a `ModelConfig`, failing fast (with a fix) when weights are unavailable.

open_clip retries a missing download for about a minute before raising; here a pretrained tag is first
looked up in the local caches, and only if it is missing is the network probed (3 s) before fetching.
"""

from __future__ import annotations

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
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError, unknown_name
from clipstudy.models.attention import split_attention

TINY_ARCH = "clipstudy-tiny"
_CONFIG_DIR = Path(__file__).parent / "model_configs"
_PROBE_TIMEOUT_S = 3.0
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")

if TINY_ARCH not in open_clip.list_models():
    open_clip.add_model_config(_CONFIG_DIR / f"{TINY_ARCH}.json")


@dataclass
class BuiltModel:
    model: torch.nn.Module
    """The open_clip model, attention already split (see `attention.split_attention`), in eval mode."""
    tokenizer: Callable[[list[str]], torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch: str
    pretrained: str


def list_architectures() -> list[str]:
    return list(open_clip.list_models())


def build_clip(cfg: ModelConfig, device: str | torch.device = "cpu") -> BuiltModel:
    """Create `cfg.arch` with weights from `cfg.pretrained` ('none', a local file or an open_clip tag)."""
    arch = cfg.arch
    if arch not in open_clip.list_models():
        raise unknown_name("architecture", arch, list_architectures(), ModelError)
    checkpoint, tag_cfg = _resolve_weights(arch, cfg.pretrained, cfg.cache_dir)
    force_preprocess = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if tag_cfg.get(k) is not None}
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
    split_attention(model)
    model.eval()
    preprocess = getattr(model.visual, "preprocess_cfg", None) or {}
    return BuiltModel(
        model=model,
        tokenizer=open_clip.get_tokenizer(arch, cache_dir=cfg.cache_dir),
        image_size=_square_size(preprocess.get("size", model.visual.image_size)),
        mean=tuple(preprocess.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(preprocess.get("std", open_clip.OPENAI_DATASET_STD)),
        arch=arch,
        pretrained=cfg.pretrained,
    )


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
    if not _reachable(url):
        raise ModelError(
            f"weights '{tag}' for '{arch}' are not cached and {where} is unreachable (no network?); {hint}"
        )
    try:
        return open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
    except Exception as error:  # open_clip wraps every hub/HTTP failure differently
        raise ModelError(f"could not fetch weights '{tag}' for '{arch}' from {where}: {error}; {hint}") from error


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _reachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
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
