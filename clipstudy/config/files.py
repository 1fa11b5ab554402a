"""Reading config files (studies, cluster launcher configs): YAML, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from clipstudy.errors import ConfigError


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
