"""Provenance tags: the git state of the clipstudy source and the versions of the packages a result depends on."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

from clipstudy.tracking.schema import GIT_COMMIT, GIT_DIRTY, VERSION

__all__ = ["VERSIONED_PACKAGES", "provenance_tags"]

VERSIONED_PACKAGES = ("torch", "open_clip_torch", "peft", "ray", "optuna", "mlflow", "clipstudy")


def provenance_tags() -> dict[str, str]:
    """Git commit/dirty flag of the clipstudy source (else of the working directory) and package versions."""
    return dict(_provenance())


@functools.lru_cache(maxsize=1)
def _provenance() -> dict[str, str]:
    tags = dict(_git_state())
    for package in VERSIONED_PACKAGES:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        tags[f"{VERSION}.{package}"] = version
    return tags


def _git_state() -> dict[str, str]:
    unknown = {GIT_COMMIT: "unknown", GIT_DIRTY: "unknown"}
    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        commit = _git(folder, "rev-parse", "HEAD")
        if commit:
            changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
            dirty = "unknown" if changes is None else ("true" if changes else "false")
            return {GIT_COMMIT: commit, GIT_DIRTY: dirty}
    return unknown


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
