"""Write a trial's result as files: the artifacts the tracking layer attaches to an MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from safetensors.torch import save_file

from clipstudy.engine import TrialResult, confusion_frame
from clipstudy.tracking.schema import (
    CONFIG_FILE,
    CONFUSION_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    PER_CLASS_FILE,
    WEIGHTS_FILE,
)

__all__ = ["write_result"]


def write_result(result: TrialResult, directory: str | Path) -> Path:
    """Write the result's files (`schema.ARTIFACTS`) into `directory`; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result.per_class.to_csv(directory / PER_CLASS_FILE, index=False)
    confusion_frame(result.confusion, result.classnames).to_csv(directory / CONFUSION_FILE)
    weights = {name: tensor.contiguous() for name, tensor in result.weights.items()}
    save_file(weights, directory / WEIGHTS_FILE, metadata={"method": result.config.method})
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False))
    pd.DataFrame(result.history).to_csv(directory / HISTORY_FILE, index=False)
    (directory / METRICS_FILE).write_text(json.dumps(result.metrics, indent=2))
    return directory
