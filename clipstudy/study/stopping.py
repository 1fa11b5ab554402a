"""Ctrl-C stops the whole study, the way Tune stops one search.

Tune's own SIGINT handler ends the search it is running (saving its state one last time) and returns
from `Tuner.fit` as if it had finished, so a study would go on with its next arm. Here the first Ctrl-C
asks Tune for that same graceful stop (through SIGUSR1, which Tune handles alike) and no further arm
starts; `run_study` then raises `StudyInterrupted`. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from clipstudy.errors import StudyInterrupted
from clipstudy.study.progress import say

TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"
TUNE_CHATTER = {
    "ray.tune.tune": ("Stop signal received", "Experiment has been interrupted"),
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics",),
}
"""What Tune logs when it stops a search this way: its advice (`Tuner.restore(...)`) is not the user's next step
and a trial stopped before its first result has no metrics to read; the study prints its own lines instead."""


class DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


class StopRequest:
    """While open (in the main thread), SIGINT asks the study to stop instead of ending only the current arm."""

    def __init__(self, resume_hint: str):
        self.resume_hint = resume_hint
        self.requested = False
        self._previous: signal.Handlers | None = None
        self._tune_setting: str | None = None
        self._filters = {name: DropMessages(prefixes) for name, prefixes in TUNE_CHATTER.items()}

    def __enter__(self) -> StopRequest:
        for name, chatter in self._filters.items():
            logging.getLogger(name).addFilter(chatter)
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._tune_setting = os.environ.get(TUNE_SIGINT)
            os.environ[TUNE_SIGINT] = "1"  # Tune keeps its hands off SIGINT; it still handles SIGUSR1
        return self

    def __exit__(self, *exc: object) -> None:
        for name, chatter in self._filters.items():
            logging.getLogger(name).removeFilter(chatter)
        if self._previous is None:
            return
        signal.signal(signal.SIGINT, self._previous)
        if self._tune_setting is None:
            os.environ.pop(TUNE_SIGINT, None)
        else:
            os.environ[TUNE_SIGINT] = self._tune_setting

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        say("stopping: the running trials stop and the search's state is saved (Ctrl-C again: stop at once)")
        if callable(signal.getsignal(signal.SIGUSR1)):  # a Tune search is (or was) running: stop it gracefully
            os.kill(os.getpid(), signal.SIGUSR1)

    def check(self, arm: str) -> None:
        """Raise `StudyInterrupted` if a stop was asked for (call before and after each arm)."""
        if self.requested:
            hint = self.resume_hint
            raise StudyInterrupted(f"Ctrl-C during arm '{arm}': the trials that ran are recorded. {hint}")
