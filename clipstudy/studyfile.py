"""Study files: a named list of arms, each a method with config overrides over a shared base.

Validation reports every problem, each prefixed with the file and the field path, before any
compute starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clipstudy.config import TrialConfig, build_config, format_validation_error, load_yaml
from clipstudy.errors import ConfigError, did_you_mean


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    method: str
    config: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the study's base config for this arm (nested sections or dotted keys)."""


class Study(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    """Config shared by every arm; defaults fill in the rest."""
    arms: list[Arm] = Field(min_length=1)

    @field_validator("arms")
    @classmethod
    def _unique_names(cls, arms: list[Arm]) -> list[Arm]:
        names = [arm.name for arm in arms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(duplicates)}")
        return arms

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        names = [a.name for a in self.arms]
        raise ConfigError(
            f"study '{self.name}' has no arm '{name}'{did_you_mean(name, names)}; arms: {', '.join(names)}"
        )

    def arm_config(self, arm: Arm | str, overrides: list[str] = (), where: str = "") -> TrialConfig:
        arm = self.arm(arm) if isinstance(arm, str) else arm
        index = self.arms.index(arm)
        return build_config(
            self.base,
            {"method": arm.method},
            arm.config,
            overrides=list(overrides),
            where=f"{where}arms[{index}] ({arm.name})",
        )


def load_study(path: str | Path) -> Study:
    """Parse and fully validate a study file (every arm's resolved config included)."""
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a mapping with 'name' and 'arms'")
    try:
        study = Study.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None
    problems = []
    for arm in study.arms:
        try:
            study.arm_config(arm, where=f"{path}: ")
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("\n".join(problems))
    return study
