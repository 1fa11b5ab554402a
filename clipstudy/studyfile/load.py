"""Reading a study file: its structure, every arm's resolved config and search space, then what it sets in vain.

Validation reports every problem, each named by the file and the field path, before any compute starts;
keys that a valid study sets but whose arm's method never reads come out as `UnreadKeyWarning`s.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from clipstudy.config import load_yaml
from clipstudy.errors import ConfigError, Problem
from clipstudy.studyfile.diagnostics import salvage, structure_problem
from clipstudy.studyfile.schema import NAMED_LISTS, REQUIRED, Study
from clipstudy.studyfile.search_space import grid
from clipstudy.studyfile.unread import unread_keys, warn_unread


def load_study(path: str | Path) -> Study:
    """Parse and fully validate a study file (every arm's resolved config included).

    Every problem is listed at once: when the file's own structure has errors, the parts that are valid
    are still checked down to the config of each arm. A valid study warns once about each key it sets
    that its arm's method never reads.
    """
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a mapping with 'name' and 'arms'")
    problems: list[Problem] = []
    try:
        study: Study | None = Study.model_validate(raw)
    except ValidationError as error:
        problems += [structure_problem(Study, item, raw, str(path), NAMED_LISTS) for item in error.errors()]
        study = salvage(Study, raw, error, REQUIRED, NAMED_LISTS)
    if study is not None:
        problems += config_problems(study, path)
    if problems:
        raise ConfigError(problems)
    warn_unread(unread_keys(study, where=f"{path}: "))
    return study


def config_problems(study: Study, path: Path) -> list[Problem]:
    """Problems of each arm's resolved config and of its search space (a problem of the base, found again
    through every arm and search value, is listed once by `ConfigError`)."""
    problems = []
    for index, arm in enumerate(study.arms):
        try:
            study.arm_config(arm, where=f"{path}: ")
        except ConfigError as error:
            problems += error.problems
        problems += study.check_search(arm, where=f"{path}: ")
        if study.search.algorithm == "grid":
            try:
                grid(arm.search)
            except ValueError as error:
                problems.append(Problem(str(error), f"arms[{index}] ({arm.name}).search", str(path)))
    return problems
