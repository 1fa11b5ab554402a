"""The trial configuration as a pure typed schema: every key a study or `--set` may change, with its one default.

It knows no plug-in: names of methods, datasets and architectures, and each method's defaults, are checked
and filled in where a study is resolved (`clipstudy.studyfile`).

- `schema`: the sections and `TrialConfig`, with what each key means;
- `fields`: the field types they share (bounded numbers, unique lists, registry names);
- `tree`: nested sections and dotted keys, and merging layers of them;
- `keys`: the dotted keys that exist, and what is wrong with one that does not;
- `overrides`: `key=value` text;
- `files`: YAML files.
"""

from clipstudy.config.fields import NAME_CHECKS, NameCheck, NameKind
from clipstudy.config.files import load_yaml
from clipstudy.config.keys import config_keys, key_problems
from clipstudy.config.overrides import parse_override, parse_value
from clipstudy.config.schema import (
    AugmentConfig,
    DataConfig,
    EvalConfig,
    HeadConfig,
    LoraConfig,
    LossConfig,
    ModelConfig,
    ProbeConfig,
    PromptsConfig,
    TokensConfig,
    TrainConfig,
    TrialConfig,
    WiseConfig,
)
from clipstudy.config.tree import expand, flatten, leaf_keys, merge

__all__ = [
    "NAME_CHECKS",
    "AugmentConfig",
    "DataConfig",
    "EvalConfig",
    "HeadConfig",
    "LoraConfig",
    "LossConfig",
    "ModelConfig",
    "NameCheck",
    "NameKind",
    "ProbeConfig",
    "PromptsConfig",
    "TokensConfig",
    "TrainConfig",
    "TrialConfig",
    "WiseConfig",
    "config_keys",
    "expand",
    "flatten",
    "key_problems",
    "leaf_keys",
    "load_yaml",
    "merge",
    "parse_override",
    "parse_value",
]
