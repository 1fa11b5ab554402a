"""What the end of a study says about its failed trials, and whether it counts as a failure."""

import pandas as pd

from clipstudy.analysis.summary import failure_note
from clipstudy.tracking.schema import ARM_COLUMN, REASON_COLUMN, STATUS_COLUMN


def frame(statuses: list[str], reasons: list[str | None], arms: list[str]) -> pd.DataFrame:
    return pd.DataFrame({ARM_COLUMN: arms, STATUS_COLUMN: statuses, REASON_COLUMN: reasons})


def test_no_failed_trial_says_nothing():
    assert failure_note(frame(["completed", "pruned"], [None, None], ["a", "a"])) == (None, False)
    assert failure_note(pd.DataFrame()) == (None, False)


def test_some_failed_trials_are_counted_with_their_reasons_and_arms():
    trials = frame(
        ["completed", "failed", "failed", "failed"],
        [None, "non-finite training loss", "non-finite training loss", None],
        ["lora", "lora", "probe", "probe"],
    )
    note, every = failure_note(trials)
    assert not every
    assert note.splitlines() == [
        "3 of 4 trials failed (3):",
        "  lora, probe: non-finite training loss",
        "  probe: no reason recorded",
    ]


def test_every_trial_failed_and_many_reasons_are_cut():
    reasons = [f"reason {i}" for i in range(5)]
    note, every = failure_note(frame(["failed"] * 5, reasons, ["a"] * 5))
    assert every
    lines = note.splitlines()
    assert lines[0] == "every trial failed (5):"
    assert lines[1:4] == ["  a: reason 0", "  a: reason 1", "  a: reason 2"]
    assert lines[4] == "  ... and 2 other reason(s): see each run's failure.txt"
