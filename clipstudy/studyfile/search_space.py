"""Search-space entries of a study arm: choice, uniform, loguniform, int, each optionally conditional.

```yaml
search:
  train.lr: {loguniform: [1.0e-5, 1.0e-2]}
  lora.r: {choice: [4, 8, 16, 32, 64]}
  head.hidden: {int: [128, 1024], step: 128, when: {head.kind: mlp}}
```

An entry with `when` is sampled only when every named key has (one of) the given value(s), taken
from the values sampled so far or, for keys not searched, from the arm's resolved config. The
space is sampled define-by-run by Optuna, which handles such conditional spaces natively.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KINDS = ("choice", "uniform", "loguniform", "int")


class Dist(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: list[Any] | None = Field(default=None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int_: tuple[int, int] | None = Field(default=None, alias="int")
    step: float | None = Field(default=None, gt=0)
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dist:
        given = [k for k in KINDS if self.bounds_or_values(k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}; got {', '.join(given) or 'none'}")
        if self.kind != "choice":
            low, high = self.bounds_or_values(self.kind)
            if low > high:
                raise ValueError(f"{self.kind}: low ({low}) > high ({high})")
            if self.kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: low must be > 0, got {low}")
        if self.step is not None and self.kind in ("choice", "loguniform"):
            raise ValueError(f"step applies to uniform and int, not {self.kind}")
        return self

    def bounds_or_values(self, kind: str) -> Any:
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> Literal["choice", "uniform", "loguniform", "int"]:
        return next(k for k in KINDS if self.bounds_or_values(k) is not None)

    def candidates(self) -> list[Any]:
        """Values that represent the entry for validation: every choice, or both bounds."""
        values = self.bounds_or_values(self.kind)
        return list(values) if self.kind == "choice" else [values[0], values[1]]

    def applies(self, values: dict[str, Any]) -> bool:
        if not self.when:
            return True
        for key, wanted in self.when.items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if values.get(key) not in allowed:
                return False
        return True

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw a value from an Optuna trial (define-by-run)."""
        if self.kind == "choice":
            values = self.choice
            index = trial.suggest_categorical(name, list(range(len(values)))) if _unhashable(values) else None
            return values[index] if index is not None else trial.suggest_categorical(name, values)
        low, high = self.bounds_or_values(self.kind)
        if self.kind == "int":
            return trial.suggest_int(name, low, high, step=int(self.step or 1))
        if self.kind == "loguniform":
            return trial.suggest_float(name, low, high, log=True)
        return trial.suggest_float(name, low, high, step=self.step)


def _unhashable(values: list[Any]) -> bool:
    """Optuna's categorical choices must be None/bool/int/float/str; lists (e.g. LoRA targets) go by index."""
    return any(not isinstance(v, (type(None), bool, int, float, str)) for v in values)


def sample(space: dict[str, Dist], trial: Any, fixed: dict[str, Any]) -> dict[str, Any]:
    """Sample every applicable entry in file order; `fixed` holds the arm's resolved (flat) config."""
    values = dict(fixed)
    chosen: dict[str, Any] = {}
    for key, dist in space.items():
        if dist.applies(values):
            chosen[key] = values[key] = dist.suggest(trial, key)
    return chosen


def grid(space: dict[str, Dist]) -> dict[str, list[Any]]:
    """The grid for grid search: every entry must be a choice (conditional entries are not allowed)."""
    problems = [k for k, d in space.items() if d.kind != "choice" or d.when]
    if problems:
        raise ValueError(f"grid search needs unconditional 'choice' entries; not: {', '.join(problems)}")
    return {key: (list(range(len(d.choice))) if _unhashable(d.choice) else d.choice) for key, d in space.items()}
