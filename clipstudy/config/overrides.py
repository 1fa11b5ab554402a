"""`key=value` overrides (`--set train.lr=3e-4`): the text as a key and a YAML value."""

from __future__ import annotations

from typing import Any

import yaml

from clipstudy.errors import ConfigError


def parse_override(text: str) -> tuple[str, Any]:
    """'train.lr=3e-4' -> ('train.lr', 0.0003); values are YAML, so '[q,v]' is a list."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like key=value, e.g. train.lr=3e-4")
    return key.strip(), parse_value(raw)


def parse_value(raw: str) -> Any:
    """A YAML scalar or list; numbers YAML 1.1 leaves as strings (`3e-4`) become floats."""
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
