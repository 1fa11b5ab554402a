"""The study file's schema: a named list of arms, each a method with config overrides over a shared base.

`load_study` (in `clipstudy.studyfile.load`) validates a file against it, every arm's config included.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clipstudy.config import TrialConfig, flatten, key_problems
from clipstudy.errors import ConfigError, Problem, did_you_mean
from clipstudy.studyfile.resolve import override_layers, resolve_config
from clipstudy.studyfile.search_space import Dist

METRICS = ("val/acc", "val/loss", "train/acc", "train/loss")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchSettings(Strict):
    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    """Optuna's TPE (default), random sampling, or the full grid of every arm's choices."""
    seed: int = 0


class SchedulerSettings(Strict):
    kind: Literal["asha", "fifo"] = "asha"
    grace_period: Annotated[int, Field(ge=1)] = 1
    """Epochs every trial runs before ASHA may stop it."""
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0


class Resources(Strict):
    """What one worker of a trial needs; a trial has `workers` of them (DDP when > 1)."""

    cpus: Annotated[float, Field(gt=0)] = 1.0
    gpus: Annotated[float, Field(ge=0)] = 0.0
    """Fractions below 1 share a GPU between trials (e.g. 0.25: four linear probes per GPU)."""
    workers: Annotated[int, Field(ge=1)] = 1
    in_process: bool = True
    """Run one-worker trials inside the trial's own process (Ray Train's num_workers=0): cheaper
    than a separate worker actor (docs/benchmarks.md); ignored when workers > 1."""

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, gpus: float) -> float:
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(f"more than one GPU per worker must be a whole number, got {gpus}")
        return gpus

    @model_validator(mode="after")
    def _one_gpu_per_rank(self) -> Resources:
        if self.workers > 1 and 0 < self.gpus < 1:
            raise ValueError(
                f"workers: {self.workers} with gpus: {self.gpus:g}: the workers of one trial cannot share a GPU "
                "(NCCL needs a GPU per rank); give each worker gpus: 1, or use workers: 1 to share GPUs between trials"
            )
        return self


class Arm(Strict):
    name: str = Field(min_length=1)
    method: str
    config: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the study's base config for this arm (nested sections or dotted keys)."""
    search: dict[str, Dist] = Field(default_factory=dict)
    """Config key -> search-space entry, sampled per trial."""
    trials: Annotated[int, Field(ge=1)] = 1
    """Trial budget of the arm (Tune's num_samples; for grid search, repeats of the grid)."""
    resources: Resources | None = None
    """Overrides the study's per-trial resources for this arm."""


class Study(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    """Config shared by every arm; defaults fill in the rest."""
    arms: list[Arm] = Field(min_length=1)
    metric: Literal[METRICS] = "val/acc"
    mode: Literal["max", "min"] = "max"
    search: SearchSettings = Field(default_factory=SearchSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    """Trials running at once per arm; None = as many as the resources allow."""
    max_failures: Annotated[int, Field(ge=0)] = 1
    """Ray Train FailureConfig: restarts of a trial's workers from its last epoch checkpoint."""
    tracking_uri: str | None = None
    """MLflow tracking server; MLFLOW_TRACKING_URI wins; default: ./mlflow.db (SQLite)."""
    storage: str | None = None
    """Ray storage path for checkpoints (s3://... on multi-node clusters); default ./runs."""

    @model_validator(mode="after")
    def _metric_mode(self) -> Study:
        expected = "max" if self.metric.endswith("/acc") else "min"
        if self.mode != expected:
            raise ValueError(f"mode '{self.mode}' with metric '{self.metric}' would select the worst trial")
        return self

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

    def arm_config(
        self,
        arm: Arm | str,
        overrides: list[str] = (),
        where: str = "",
        params: dict[str, Any] | None = None,
        params_where: str | None = None,
    ) -> TrialConfig:
        """Defaults <- study base <- arm config <- sampled `params` <- `--set` overrides.

        A problem is named by where its key was set (`base`, `arms[i] (name).config`, the search entry
        `params_where`, or the `--set`); `where` prefixes them all (the file).
        """
        arm = self.arm(arm) if isinstance(arm, str) else arm
        label = f"{where}arms[{self.arms.index(arm)}] ({arm.name})"
        layers = [
            (f"{where}base", self.base),
            (label, {"method": arm.method}),
            (f"{label}.config", arm.config),
            (params_where or f"{label}.search", params or {}),
            *override_layers(list(overrides)),
        ]
        return resolve_config(layers, label)

    def arm_resources(self, arm: Arm) -> Resources:
        return arm.resources or self.resources

    def check_search(self, arm: Arm, where: str = "") -> list[Problem]:
        """Problems of an arm's search space: unknown keys, and values the config would reject."""
        index = self.arms.index(arm)
        prefix = f"{where}arms[{index}] ({arm.name}).search"
        problems = []
        for key, dist in arm.search.items():
            unknown = key_problems([key, *(dist.when or {})])
            if unknown:
                problems += [Problem(message, layer=f"{prefix}.{key}") for message in unknown.values()]
                continue
            for value in dist.candidates():
                try:
                    self.arm_config(arm, params={key: value}, where=where, params_where=f"{prefix}.{key}={value!r}")
                except ConfigError as error:
                    problems += error.problems
        return problems

    def fixed_values(self, arm: Arm) -> dict[str, Any]:
        """The arm's resolved config as dotted keys (what `when` conditions see for unsearched keys)."""
        return flatten(self.arm_config(arm).model_dump(mode="json"))


REQUIRED = ("name", "arms")
NAMED_LISTS = {"arms": "name"}
"""Lists whose entries errors name by their `name` (`arms[0] (lora)`), and which salvage never shortens."""
