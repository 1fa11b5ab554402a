"""Where a model's weights and Hugging Face files come from: pretrained tags, local checkpoint files, the
Hugging Face and open_clip caches, and whether the network can be reached (as timm keeps `_pretrained.py` and
`_hub.py` apart from `_builder.py`).

open_clip retries a missing download for about a minute before raising; here a pretrained tag is first
looked up in the local caches, and only if it is missing is the network probed (3 s) before fetching.
The same holds for the Hugging Face files some architectures need besides weights (SigLIP's tokenizer,
an HF text tower's config): every failure is a ModelError, within seconds, saying how to get the files.

The same weights give other features built with QuickGELU than with GELU, and open_clip's tags record which
(and the preprocessing) while a checkpoint file does not: `resolve_weights` reads it for a local file from the
Hub's `open_clip_config.json` beside it, or from `model.pretrained_tag`, and refuses to guess.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

import open_clip
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import PreprocessCfg, merge_preprocess_dict

from clipstudy.errors import ModelError
from clipstudy.models.names import packaged_checkpoint, packaged_tags

_PROBE_TIMEOUT_S = 3.0
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
"""What a `model.pretrained` naming a missing file usually ends with (so it is not taken for a tag)."""
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")
_OFFLINE_DIR = "~/clip-weights"
"""Where the offline hint suggests putting downloaded weights (any folder will do)."""


@dataclass(frozen=True)
class WeightSource:
    """Where a model's weights come from and how they must be built and fed to give the features they were
    trained to give: open_clip's tags record QuickGELU and preprocessing that a bare checkpoint file lacks."""

    checkpoint: str | None
    """The weights file; None for random weights."""
    quick_gelu: bool
    preprocess: dict[str, Any] = field(default_factory=dict)
    """open_clip's preprocessing keys (mean, std, interpolation, resize_mode, ...) to force; {} = its defaults."""
    origin: str = "the architecture's defaults"
    """What the activation and preprocessing were read from: a tag, an open_clip_config.json, ..."""


def resolve_weights(
    arch: str, pretrained: str, cache_dir: str | None, pretrained_tag: str | None = None
) -> WeightSource:
    """The weights `model.pretrained` names ('none', a local file or an open_clip tag) and how to build them.

    A local file is built as its `open_clip_config.json` (open_clip's Hub format, beside the file) says, or
    else as `model.pretrained_tag` says, or else as all of the architecture's tags agree.
    """
    if pretrained.strip().lower() in ("", "none"):
        return _tag_source(arch, pretrained_tag, None) if pretrained_tag else _arch_source(arch, None)
    packaged = packaged_checkpoint(arch, pretrained)
    if packaged is not None:
        if not packaged.is_file():
            raise ModelError(
                f"'{arch}' tag '{pretrained}' ships with clipstudy, but {packaged} is missing: reinstall clipstudy, "
                f"or recreate it with `python tools/pretrain_micro_clip.py`"
            )
        return _file_source(arch, packaged, pretrained_tag)
    path = Path(pretrained).expanduser()
    if path.is_file():
        return _file_source(arch, path, pretrained_tag)
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        if path.suffix in _CHECKPOINT_SUFFIXES or os.sep in pretrained:
            raise ModelError(f"model.pretrained: no such checkpoint file '{path}'")
        raise ModelError(
            f"unknown pretrained tag '{pretrained}' for '{arch}'; valid tags: {_valid_tags(arch)}; "
            "or set model.pretrained to a local checkpoint file, or 'none' for random weights"
        )
    if pretrained_tag and open_clip.get_pretrained_cfg(arch, pretrained_tag) != tag_cfg:
        raise ModelError(
            f"model.pretrained_tag '{pretrained_tag}' contradicts model.pretrained '{pretrained}', a tag itself; "
            "model.pretrained_tag is for local checkpoint files: remove it"
        )
    checkpoint = cached_checkpoint(tag_cfg, cache_dir) or _download(arch, pretrained, tag_cfg, cache_dir)
    return _tag_source(arch, pretrained, checkpoint)


def _file_source(arch: str, path: Path, pretrained_tag: str | None) -> WeightSource:
    config_path = path.parent / HF_CONFIG_NAME
    if not config_path.is_file():
        return _tag_source(arch, pretrained_tag, str(path)) if pretrained_tag else _agreed_source(arch, path)
    source = _hub_config_source(arch, path, config_path)
    if pretrained_tag:
        tagged = _tag_source(arch, pretrained_tag, str(path))
        if _build_signature(tagged) != _build_signature(source):
            raise ModelError(
                f"model.pretrained_tag '{pretrained_tag}' builds '{arch}' as {_describe(tagged)}, but {config_path} "
                f"(beside model.pretrained) says {_describe(source)}; remove model.pretrained_tag to build as the "
                "file's config says, or remove that json"
            )
    return source


def _hub_config_source(arch: str, checkpoint: Path, config_path: Path) -> WeightSource:
    """Build as open_clip's Hub config (`{"model_cfg": ..., "preprocess_cfg": ...}`) says, once it is checked to
    describe `arch`: open_clip builds `arch`'s own config, with the json's QuickGELU and preprocessing."""
    try:
        hub_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {config_path} (beside model.pretrained): {error}") from error
    model_cfg = hub_config.get("model_cfg") if isinstance(hub_config, dict) else None
    if not isinstance(model_cfg, dict):
        raise ModelError(f"{config_path} (beside model.pretrained) has no 'model_cfg': not open_clip's Hub config")
    arch_cfg = open_clip.get_model_config(arch)
    mismatches = _config_mismatches(arch_cfg, model_cfg)
    if arch_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        mismatches.append(f"quick_gelu: false in the file, true in '{arch}'")
    if mismatches:
        raise ModelError(
            f"{config_path} describes another model than model.arch '{arch}' ({'; '.join(mismatches)}); set "
            "model.arch to the architecture the checkpoint holds (`clipstudy ls models`), or remove that json"
        )
    preprocess = hub_config.get("preprocess_cfg") or {}
    return WeightSource(
        str(checkpoint), bool(model_cfg.get("quick_gelu")), _preprocess_overrides(preprocess), str(config_path)
    )


def _config_mismatches(expected: dict, given: dict, prefix: str = "") -> list[str]:
    """The keys (dotted) that both model configs set, to different values."""
    mismatches = []
    for key in sorted(expected.keys() & given.keys() - {"quick_gelu"}):
        want, have = expected[key], given[key]
        if isinstance(want, dict) and isinstance(have, dict):
            mismatches += _config_mismatches(want, have, f"{prefix}{key}.")
        elif _comparable(key, want) != _comparable(key, have):
            mismatches.append(f"{prefix}{key}: {have!r} in the file, {want!r} in the architecture")
    return mismatches


def _comparable(key: str, value: Any) -> Any:
    """A config value as compared: lists as tuples, a square size `n` as `(n, n)`."""
    if isinstance(value, list | tuple):
        return tuple(_comparable("", item) for item in value)
    if key in ("image_size", "patch_size") and isinstance(value, int):
        return (value, value)
    return value


def _tag_source(arch: str, tag: str, checkpoint: str | None) -> WeightSource:
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not tag_cfg:
        raise ModelError(
            f"model.pretrained_tag: unknown tag '{tag}' for '{arch}'; valid tags: {_valid_tags(arch)}; "
            "or remove model.pretrained_tag"
        )
    quick_gelu = bool(open_clip.get_model_config(arch).get("quick_gelu") or tag_cfg.get("quick_gelu"))
    return WeightSource(checkpoint, quick_gelu, _preprocess_overrides(tag_cfg), f"tag '{tag}'")


def _arch_source(arch: str, checkpoint: str | None) -> WeightSource:
    return WeightSource(checkpoint, bool(open_clip.get_model_config(arch).get("quick_gelu")))


def _agreed_source(arch: str, path: Path) -> WeightSource:
    """A bare file is built as the architecture's tags build their weights, if they all agree."""
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        return _arch_source(arch, str(path))
    groups: dict[tuple, list[str]] = {}
    for tag in tags:
        groups.setdefault(_build_signature(_tag_source(arch, tag, None)), []).append(tag)
    if len(groups) == 1:
        return replace(_tag_source(arch, tags[0], str(path)), origin=f"the tags of '{arch}' (all agree)")
    differ = [name for index, name in enumerate(_SIGNATURE_NAMES) if len({key[index] for key in groups}) > 1]
    described = "; ".join(
        f"{_describe(_tag_source(arch, group[0], None), differ)}: {', '.join(group)}" for group in groups.values()
    )
    examples = " or ".join(f"`model.pretrained_tag: {group[0]}`" for group in groups.values())
    raise ModelError(
        f"model.pretrained: '{path}' has no {HF_CONFIG_NAME} beside it, and the tags of '{arch}' build their "
        f"weights with different {', '.join(differ)} ({described}); set model.pretrained_tag to the tag the "
        f"file's weights come from ({examples}), or put the {HF_CONFIG_NAME} of the Hugging Face Hub repo "
        "the file comes from beside it"
    )


_SIGNATURE_NAMES = ("activation", "mean", "std", "interpolation", "resize_mode")


def _build_signature(source: WeightSource) -> tuple:
    """(activation, mean, std, interpolation, resize_mode) as open_clip resolves them (its defaults filled in)."""
    pre = merge_preprocess_dict(PreprocessCfg(), source.preprocess)
    activation = "QuickGELU" if source.quick_gelu else "GELU"
    return activation, tuple(pre["mean"]), tuple(pre["std"]), pre["interpolation"], pre["resize_mode"]


def _describe(source: WeightSource, names: Sequence[str] = _SIGNATURE_NAMES) -> str:
    signature = dict(zip(_SIGNATURE_NAMES, _build_signature(source), strict=True))
    return ", ".join(str(signature[name]) if name == "activation" else f"{name} {signature[name]}" for name in names)


def _preprocess_overrides(cfg: dict) -> dict[str, Any]:
    return {key: cfg[key] for key in _PREPROCESS_KEYS if cfg.get(key) is not None}


def _valid_tags(arch: str) -> str:
    tags = open_clip.list_pretrained_tags_by_model(arch) + packaged_tags(arch)
    return ", ".join(tags) if tags else "(none: this architecture has no published weights)"


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
        f"on a machine with internet run `hf download {repo_id}` and copy its Hugging Face cache "
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
        url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        offline = _env_flag("HF_HUB_OFFLINE")
    else:
        url = tag_cfg.get("url", "")
        where = url
        offline = False
    hint = offline_hint(arch, tag, tag_cfg)
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


def offline_hint(arch: str, tag: str, tag_cfg: dict) -> str:
    """How to get a tag's weights onto a machine without internet so that they build exactly as the tag does.

    From the Hub: the weights file and the repo's open_clip_config.json, which sit side by side and give the
    activation and preprocessing. From a URL: the file, with `model.pretrained_tag` naming the tag.
    """
    folder = f"{_OFFLINE_DIR}/{arch}-{tag}"
    source = _hf_source(tag_cfg)
    if source:
        repo_id, candidates = source
        alternative = f" (or {candidates[-1]} if the repo has no {candidates[0]})" if len(candidates) > 1 else ""
        return (
            f"on a machine with internet run `hf download {repo_id} {candidates[0]} {HF_CONFIG_NAME} "
            f"--local-dir {folder}`{alternative}, copy that folder here and set "
            f"`model.pretrained: {folder}/{candidates[0]}` (the {HF_CONFIG_NAME} beside the local file gives "
            f"its activation and preprocessing); or copy the Hugging Face cache (~/.cache/huggingface, or "
            f"$HF_HOME) of a machine that ran with `model.pretrained: {tag}` here"
        )
    url = tag_cfg.get("url", "")
    file = f"{folder}/{os.path.basename(urlparse(url).path)}"
    return (
        f"on a machine with internet download {url} (e.g. `curl -L --create-dirs -o {file} {url}`), copy it here "
        f"and set `model.pretrained: {file}` with `model.pretrained_tag: {tag}` (the tag gives its activation "
        "and preprocessing)"
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
