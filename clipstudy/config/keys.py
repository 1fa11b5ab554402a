"""The dotted keys a study or override may set, and what is wrong with one that names no field."""

from __future__ import annotations

from functools import cache

from clipstudy.config.schema import TrialConfig
from clipstudy.config.tree import flatten
from clipstudy.errors import did_you_mean

RENAMED = {"train.min_lr": "train.eta_min"}
"""Keys that were renamed: old -> new, so an old study gets the new name in its error."""


@cache
def _keys() -> tuple[str, ...]:
    return tuple(sorted(flatten(TrialConfig().model_dump())))


def config_keys() -> list[str]:
    """Every dotted key a study or override may set."""
    return list(_keys())


def key_problems(flat_keys: list[str]) -> dict[str, str]:
    """Each key that names no config field -> what is wrong with it (with a did-you-mean)."""
    valid = config_keys()
    sections = {k.split(".")[0] for k in valid}
    problems = {}
    for key in flat_keys:
        if key in valid or key == "method":
            continue
        if key in RENAMED:
            problems[key] = f"'{key}' was renamed '{RENAMED[key]}'; set that instead"
        elif key in sections:
            problems[key] = f"'{key}' is a section; set one of its fields, e.g. '{key}.*'"
        else:
            problems[key] = f"unknown config key '{key}'{did_you_mean(key, valid)}"
    return problems
