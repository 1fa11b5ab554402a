"""Provenance tags: git state and package versions."""

from __future__ import annotations

import mlflow

from clipstudy.tracking.provenance import provenance_tags
from clipstudy.tracking.schema import GIT_COMMIT, GIT_DIRTY, VERSION


def test_provenance_tags():
    tags = provenance_tags()
    assert tags[GIT_DIRTY] in {"true", "false", "unknown"}
    commit = tags[GIT_COMMIT]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)
    packages = ("torch", "open_clip_torch", "peft", "ray", "optuna", "mlflow", "clipstudy")
    for package in packages:
        assert tags[f"{VERSION}.{package}"]
    assert tags[f"{VERSION}.mlflow"] == mlflow.__version__
    assert all(isinstance(v, str) for v in tags.values())
