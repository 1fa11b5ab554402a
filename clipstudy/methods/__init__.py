"""Adaptation methods: each supplies what differs (trainable parameters, logits, extra losses) to THE engine.

One file a method; importing this package registers them all in `METHODS`.
"""

from clipstudy.methods import clip_cite, flyp, full_ft, linear_probe, lora, zero_shot
from clipstudy.methods.base import BuildContext, Method, ParamGroup
from clipstudy.methods.registry import METHODS

REGISTERED = (clip_cite, flyp, full_ft, linear_probe, lora, zero_shot)
"""The method modules, imported for their registration."""

__all__ = ["METHODS", "BuildContext", "Method", "ParamGroup"]
