"""Keys a study sets that its arm's method never reads: valid, but they change nothing, so each is a warning.

Each method declares what it reads (`Method.config_reads`). A key an arm sets (in its config or its search
space) is checked against that arm's method, and named once per arm however many values it is searched
over. A key set for every arm (the study's `base`, or a `--set` of `clipstudy run`) is shared: it warns only
when none of those arms reads it, since the others simply leave it alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from clipstudy.config import expand, flatten
from clipstudy.errors import UnreadKeyWarning
from clipstudy.methods import METHODS, Method
from clipstudy.studyfile.resolve import override_layers
from clipstudy.studyfile.schema import Arm, Study


def unread_keys(study: Study, where: str = "") -> list[str]:
    """Messages for the keys the study file sets that their arm's method never reads (the base's: that no arm reads),
    one per arm or base and per section."""
    methods = [METHODS.get(arm.method) for arm in study.arms]
    messages = unread_messages(f"{where}base", set_keys(study.base), methods)
    for index, (arm, method) in enumerate(zip(study.arms, methods, strict=True)):
        keys = list(dict.fromkeys([*set_keys(arm.config), *arm.search]))
        messages += unread_messages(f"{where}arms[{index}] ({arm.name})", keys, [method])
    return messages


def unread_overrides(arms: Sequence[Arm], overrides: Sequence[str]) -> list[str]:
    """Messages for `--set` keys that none of `arms` (the arms they apply to) reads."""
    methods = [METHODS.get(arm.method) for arm in arms]
    return [
        message
        for label, layer in override_layers(list(overrides))
        for message in unread_messages(label, set_keys(layer), methods)
    ]


def warn_unread(messages: Iterable[str]) -> None:
    for message in messages:
        warnings.warn(message, UnreadKeyWarning, stacklevel=3)


def warn_unread_overrides(arms: Sequence[Arm], overrides: Sequence[str]) -> None:
    """Warn about `--set` keys that none of `arms` reads (`load_study` warns about the file's own keys)."""
    warn_unread(unread_overrides(arms, overrides))


def set_keys(layer: dict[str, Any]) -> list[str]:
    """The dotted keys a config layer (nested sections or dotted keys) sets."""
    return list(flatten(expand(layer)))


def unread_messages(label: str, keys: Iterable[str], methods: Sequence[type[Method]]) -> list[str]:
    """`label: keys are set but <method> never reads the <section> section` for each group of unread keys."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        what = never_read(key, methods)
        if what is not None:
            groups.setdefault(what, []).append(key)
    names = sorted({method.name for method in methods})
    readers = f"{names[0]} never reads" if len(names) == 1 else f"none of {', '.join(names)} reads"
    messages = []
    for what, unread in groups.items():
        verb = "is" if len(unread) == 1 else "are"
        pronoun = "it" if len(unread) == 1 else "them"
        messages.append(f"{label}: {', '.join(unread)} {verb} set but {readers} {what or pronoun}")
    return messages


def never_read(key: str, methods: Sequence[type[Method]]) -> str | None:
    """None when one of `methods` reads `key`; else what none of them reads: 'the <section> section', or ''
    for a single key of a section they read in part (`train.head_lr` for a linear probe)."""
    reads = {entry for method in methods for entry in method.config_reads()}
    if any(key == entry or key.startswith(f"{entry}.") for entry in reads):
        return None
    section = key.split(".")[0]
    return "" if any(entry.split(".")[0] == section for entry in reads) else f"the {section} section"
