"""Where a model's weights and Hugging Face files come from: pretrained tags, local checkpoint files, the
Hugging Face and open_clip caches, and whether the network can be reached (as timm keeps `_pretrained.py` and
`_hub.py` apart from `_builder.py`).

open_clip retries a missing download for about a minute before raising; here a pretrained tag is first
looked up in the local caches, and only if it is missing is the network probed (3 s) before fetching.
The same holds for the Hugging Face files some architectures need besides weights (SigLIP's tokenizer,
an HF text tower's config): every failure is a ModelError, within seconds, saying how to get the files.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

import open_clip
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from clipstudy.errors import ModelError

_PROBE_TIMEOUT_S = 3.0
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
"""What a `model.pretrained` naming a missing file usually ends with (so it is not taken for a tag)."""


def resolve_weights(arch: str, pretrained: str, cache_dir: str | None) -> tuple[str | None, dict]:
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
    cached = cached_checkpoint(tag_cfg, cache_dir)
    if cached:
        return cached, tag_cfg
    return _download(arch, pretrained, tag_cfg, cache_dir), tag_cfg


def cached_checkpoint(tag_cfg: dict, cache_dir: str | None) -> str | None:
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


def hub_cached(repo_id: str, filename: str, cache_dir: str | None) -> bool:
    """Whether the Hugging Face cache holds `filename` of `repo_id`."""
    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)


def hub_hint(repo_id: str) -> str:
    """How to get a Hub repo's files onto a machine without internet."""
    return (
        f"on a machine with internet run `huggingface-cli download {repo_id}` and copy its Hugging Face cache "
        "(~/.cache/huggingface, or $HF_HOME) here"
    )


def require_hub(what: str, repo_id: str) -> None:
    """Raise a ModelError within seconds when the Hub cannot be reached for `what` (which is not cached)."""
    if _env_flag("HF_HUB_OFFLINE"):
        raise ModelError(f"{what} is not cached and HF_HUB_OFFLINE is set; {hub_hint(repo_id)}")
    url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not reachable(url):
        raise ModelError(f"{what} is not cached and {url} is unreachable (no network?); {hub_hint(repo_id)}")


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
