"""User-facing errors and warnings: each names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class ClipstudyError(Exception):
    """An error caused by input the user can fix; the CLI prints it without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config or a study file, printed as `layer: path: message`."""

    message: str
    path: str = ""
    """The field the problem is in (`lora.r`, `arms[0] (a).resources.cpus`); '' for a problem of the whole
    config, or for a key that names no field (the message names the key)."""
    layer: str = ""
    """Where the offending value was set: `study.yaml: base`, `study.yaml: arms[1] (lora).config`, a search
    value, `--set train.lr=1`, or the file itself for its own structure."""

    def __str__(self) -> str:
        return ": ".join(part for part in (self.layer, self.path, self.message) if part)


class ConfigError(ClipstudyError):
    """A study file, config key or override is invalid: one or more problems, one line each.

    Built from a message for a single problem, or from `Problem`s (repeated ones are listed once).
    """

    def __init__(self, problems: str | Iterable[Problem]):
        self.problems = [Problem(problems)] if isinstance(problems, str) else list(dict.fromkeys(problems))
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[Problem]]]:
        """Pickled (e.g. by Ray) with its problems, not only their text."""
        return type(self), (self.problems,)


class DataError(ClipstudyError):
    """A dataset is unknown, missing or malformed."""


class ModelError(ClipstudyError):
    """An architecture or its weights cannot be built or loaded."""


class StudyInterrupted(ClipstudyError):
    """The user stopped a study (Ctrl-C); what ran is recorded and `--resume` continues it."""


class TrialFailed(ClipstudyError):
    """Training cannot go on (e.g. a non-finite loss); `reason` is recorded by the runner."""

    def __init__(self, reason: str, epoch: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.epoch = epoch


class ClipstudyWarning(UserWarning):
    """Input that is valid but probably not what the user meant; the CLI prints each once."""


class UnreadKeyWarning(ClipstudyWarning):
    """A study sets a config key that its arm's method never reads, so the setting changes nothing."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest valid name, or ''."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str], error: type[Exception] = ClipstudyError) -> Exception:
    """Build the error for an unknown registry name, listing every valid one."""
    valid = sorted(valid)
    return error(f"unknown {kind} '{name}'{did_you_mean(name, valid)}; valid: {', '.join(valid)}")


def or_list(names: Iterable[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b or c', for messages that list the valid choices."""
    names = list(names)
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
