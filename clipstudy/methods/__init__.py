"""The method registry: `clipstudy ls methods` lists it and the tests iterate over it."""

from clipstudy.errors import ConfigError
from clipstudy.registry import Registry

METHODS: Registry = Registry("method", ConfigError)

from clipstudy.methods import (  # noqa: E402,F401  (registers them)
    clip_cite,
    flyp,
    full_ft,
    linear_probe,
    lora,
    zero_shot,
)
from clipstudy.methods.base import BuildContext, Method, ParamGroup  # noqa: E402

__all__ = ["METHODS", "BuildContext", "Method", "ParamGroup"]
