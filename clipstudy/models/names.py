"""Architecture names, known without importing open_clip (10 s) or building anything.

Study validation checks `model.arch` against these, so a typo fails `clipstudy validate` instead of
every trial of a study. open_clip's architectures are its `model_configs/*.json` files (read from
its installed package without importing it), plus the offline ones shipped here; torchvision
backbones are looked up in torchvision only for `torchvision/...` names.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

TINY_ARCH = "clipstudy-tiny"
TINY_SIGLIP_ARCH = "clipstudy-tiny-siglip"
MICRO_ARCH = "clipstudy-micro"
PACKAGED_ARCHS = (TINY_ARCH, TINY_SIGLIP_ARCH, MICRO_ARCH)
"""Offline architectures shipped in `model_configs/`; they tokenize with CLIP's bundled BPE tokenizer."""
PACKAGED_CONFIG_DIR = Path(__file__).parent / "model_configs"
PACKAGED_WEIGHTS_DIR = Path(__file__).parent / "pretrained"
PACKAGED_WEIGHTS = {MICRO_ARCH: {"synthetic": PACKAGED_WEIGHTS_DIR / "clipstudy-micro-synthetic"}}
"""Pretrained tags whose weights ship with the package: a folder in open_clip's Hub layout
(`open_clip_model.safetensors` beside `open_clip_config.json`), loaded as any local checkpoint is."""
WEIGHTS_FILE = "open_clip_model.safetensors"


def packaged_checkpoint(arch: str, tag: str) -> Path | None:
    """The weights file of a packaged tag (`clipstudy-micro`, `synthetic`), or None if `tag` is not one."""
    folder = PACKAGED_WEIGHTS.get(arch, {}).get(tag)
    return None if folder is None else folder / WEIGHTS_FILE


def packaged_tags(arch: str) -> list[str]:
    return sorted(PACKAGED_WEIGHTS.get(arch, {}))


TORCHVISION_PREFIX = "torchvision/"
TORCHVISION_FAMILIES = ("resnet", "resnext", "wide_resnet")
"""torchvision classifiers whose ImageNet head is `fc` on globally pooled features."""


def is_torchvision(arch: str) -> bool:
    return arch.startswith(TORCHVISION_PREFIX)


@cache
def _open_clip_config_names() -> tuple[str, ...]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return ()
    configs = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return tuple(sorted(path.stem for path in configs.glob("*.json")))


def open_clip_architectures() -> list[str]:
    """open_clip's architectures (with any config added in this process once open_clip is imported)."""
    if "open_clip" in sys.modules:
        names = set(sys.modules["open_clip"].list_models())
    else:
        names = set(_open_clip_config_names())
    return sorted(names | set(PACKAGED_ARCHS))


@cache
def torchvision_architectures() -> list[str]:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return [TORCHVISION_PREFIX + name for name in names if name.startswith(TORCHVISION_FAMILIES)]


def list_architectures() -> list[str]:
    """Every architecture `build_model` builds: open_clip's, then the torchvision backbones."""
    return [*open_clip_architectures(), *torchvision_architectures()]


def known_architectures(arch: str) -> list[str]:
    """The valid names `arch` is checked against: torchvision's for `torchvision/...`, else open_clip's."""
    return torchvision_architectures() if is_torchvision(arch) else open_clip_architectures()
