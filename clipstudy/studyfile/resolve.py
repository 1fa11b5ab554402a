"""Config layers -> one validated `TrialConfig`: defaults, each layer in turn, registry names, method defaults.

A layer is a dict (nested sections or dotted keys) with a label saying where it comes from (`study.yaml:
base`, `--set train.lr=1`); every problem found is named by the layer that set the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from clipstudy.config import TrialConfig, expand, flatten, key_problems, leaf_keys, merge, parse_override
from clipstudy.errors import ConfigError, Problem
from clipstudy.methods import METHODS
from clipstudy.studyfile.diagnostics import dotted, validation_message
from clipstudy.studyfile.names import NAME_CONTEXT

ConfigLayer = tuple[str, dict[str, Any]]
"""A config layer and where it comes from (`study.yaml: base`, `--set train.lr=1`), for the errors."""


def resolve_config(layers: list[ConfigLayer], where: str) -> TrialConfig:
    """Defaults <- each layer in turn, validated, with the method's defaults; raises one error with every problem.

    Each problem names the layer that set the offending key (unknown keys and bad values alike), or
    `where` for a problem of the whole config (e.g. an objective of all zeros).
    """
    problems: list[Problem] = []
    tree: dict[str, Any] = {}
    sources: list[tuple[str, list[str]]] = []
    for label, layer in layers:
        try:
            expanded = expand(layer)
        except ConfigError as error:
            problems += [Problem(problem.message, layer=label) for problem in error.problems]
            continue
        unknown = key_problems(leaf_keys(expanded))
        problems += [Problem(message, layer=label) for message in unknown.values()]
        expanded = _without(expanded, unknown)
        tree = merge(tree, expanded)
        sources.append((label, list(flatten(expanded))))
    try:
        config = TrialConfig.model_validate(tree, context=NAME_CONTEXT)
    except ValidationError as error:
        for item in error.errors():
            path = dotted(item["loc"])
            problems.append(Problem(validation_message(item), path, _source(path, sources) or where))
    else:
        try:
            config = METHODS.get(config.method).with_defaults(config)
        except ConfigError as error:
            problems += [Problem(problem.message, layer=where) for problem in error.problems]
    if problems:
        raise ConfigError(problems)
    return config


def build_config(*layers: dict[str, Any], overrides: list[str] = (), where: str = "config") -> TrialConfig:
    """Defaults <- each layer (nested or dotted dicts) <- `key=value` overrides, validated."""
    labelled: list[ConfigLayer] = [(where, layer) for layer in layers]
    labelled += override_layers(overrides)
    return resolve_config(labelled, where)


def override_layers(overrides: list[str]) -> list[ConfigLayer]:
    """`--set key=value` overrides as config layers, each named by its text."""
    layers = []
    for text in overrides:
        key, value = parse_override(text)
        layers.append((f"--set {text}", {key: value}))
    return layers


def _source(path: str, sources: list[tuple[str, list[str]]]) -> str | None:
    """The last layer that set `path`, a key inside it, or the section or value that holds it."""
    if not path:
        return None
    for label, keys in reversed(sources):
        if any(key == path or key.startswith(f"{path}.") or path.startswith(f"{key}.") for key in keys):
            return label
    return None


def _without(tree: dict[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """`tree` less the leaf keys (`section.field`, or a top-level name) that name no config field."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            kept = {sub: v for sub, v in value.items() if f"{name}.{sub}" not in keys}
            if kept or not value:
                out[name] = kept
        elif name not in keys:
            out[name] = value
    return out
