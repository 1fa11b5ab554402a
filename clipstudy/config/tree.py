"""Config trees: nested sections and dotted keys, and how layers of them merge."""

from __future__ import annotations

import copy
from typing import Any

from clipstudy.errors import ConfigError


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}; lists and tuples stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def expand(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten`; also accepts already-nested values and mixes of both."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' sets a field inside '{part}', which is not a section")
        leaf = parts[-1]
        if isinstance(value, dict):
            value = expand(value)
            if isinstance(node.get(leaf), dict):
                node[leaf] = merge(node[leaf], value)
                continue
        node[leaf] = value
    return tree


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `update` over `base` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaf_keys(tree: dict[str, Any]) -> list[str]:
    """Dotted keys one level into each section (values that are lists or tuples stay whole)."""
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys.extend(f"{key}.{sub}" for sub in value)
        else:
            keys.append(key)
    return keys
