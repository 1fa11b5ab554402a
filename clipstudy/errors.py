"""User-facing errors: each names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ClipstudyError(Exception):
    """An error caused by input the user can fix; the CLI prints it without a traceback."""


class ConfigError(ClipstudyError):
    """A study file, config key or override is invalid."""


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


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest valid name, or ''."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str], error: type[ClipstudyError] = ClipstudyError):
    """Build the error for an unknown registry name, listing every valid one."""
    valid = sorted(valid)
    return error(f"unknown {kind} '{name}'{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
