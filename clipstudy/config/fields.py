"""Field types the schema shares: bounded numbers, lists without repeats, and names of registered plug-ins.

The schema knows no registry. A field typed `registered(kind)` accepts any string unless the config is
validated with a `NAME_CHECKS` context ({kind: check}), as `clipstudy.studyfile` does with the method,
dataset and architecture registries: pydantic then reports an unknown name at its field path, like any
other bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo

LoraTarget = Literal["q", "k", "v", "o", "fc1", "fc2"]
Tower = Literal["vision", "text"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]

NameKind = Literal["method", "dataset", "architecture"]
NameCheck = Callable[[str], None]
"""Raises ValueError, with the message the user sees, when a name is not registered."""
NAME_CHECKS = "name_checks"
"""The validation-context key under which `{kind: check}` is passed."""


def _no_repeats(value: list[Any]) -> list[Any]:
    if len(set(value)) != len(value):
        raise ValueError(f"entries must be unique, got {value}")
    return value


Unique = AfterValidator(_no_repeats)
"""For list fields: refuse repeated entries."""


def registered(kind: NameKind) -> AfterValidator:
    """For a name field (or a list of names): checked against the `kind` registry given in the context."""

    def check(value: str | list[str], info: ValidationInfo) -> str | list[str]:
        name_check = ((info.context or {}).get(NAME_CHECKS) or {}).get(kind)
        if name_check is not None:
            for name in [value] if isinstance(value, str) else value:
                name_check(name)
        return value

    return AfterValidator(check)
