"""The plug-in names a config may use (methods, datasets, architectures), checked against their registries.

`NAME_CONTEXT` is the validation context under which the schema's name fields check their value.
"""

from __future__ import annotations

from clipstudy.config import NAME_CHECKS, NameCheck, NameKind
from clipstudy.data import DATASETS
from clipstudy.errors import did_you_mean, unknown_name
from clipstudy.methods import METHODS
from clipstudy.models.names import PACKAGED_ARCHS, known_architectures
from clipstudy.registry import Registry


def registered_in(registry: Registry) -> NameCheck:
    """A check that refuses names `registry` does not hold, listing the valid ones (with a did-you-mean)."""

    def check(name: str) -> None:
        if name not in registry:
            raise unknown_name(registry.kind, name, registry.names(), ValueError)

    return check


def known_architecture(arch: str) -> None:
    """Refuse an architecture that neither open_clip, the package nor torchvision has (without importing them)."""
    valid = known_architectures(arch)
    if arch not in valid:
        raise ValueError(
            f"unknown architecture '{arch}'{did_you_mean(arch, valid)}; `clipstudy ls models` lists them all "
            f"(open_clip's, the offline {' and '.join(PACKAGED_ARCHS)}, and torchvision/resnet50 and kin)"
        )


CHECKS: dict[NameKind, NameCheck] = {
    "method": registered_in(METHODS),
    "dataset": registered_in(DATASETS),
    "architecture": known_architecture,
}
NAME_CONTEXT = {NAME_CHECKS: CHECKS}
