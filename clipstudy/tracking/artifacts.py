"""Write a trial's result as files: the artifacts the tracking layer attaches to an MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from safetensors.torch import save_file

from clipstudy.engine import TrialResult, confusion_frame

ARTIFACTS = (
    "per_class.csv",
    "confusion_matrix.csv",
    "weights.safetensors",
    "config.yaml",
    "history.csv",
    "metrics.json",
)


def write_result(result: TrialResult, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result.per_class.to_csv(directory / "per_class.csv", index=False)
    confusion_frame(result.confusion, result.classnames).to_csv(directory / "confusion_matrix.csv")
    weights = {name: tensor.contiguous() for name, tensor in result.weights.items()}
    save_file(weights, directory / "weights.safetensors", metadata={"method": result.config.method})
    (directory / "config.yaml").write_text(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False))
    pd.DataFrame(result.history).to_csv(directory / "history.csv", index=False)
    (directory / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    return directory
