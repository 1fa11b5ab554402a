"""Prompt templates for zero-shot classification and text heads.

Each list's first entry is the single-template choice (`prompts.templates: single`).
"""

from __future__ import annotations

CIFAR_TEMPLATES: list[str] = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
]
"""CLIP's 18 CIFAR-10/100 templates (Radford et al. 2021, notebooks/Prompt_Engineering_for_ImageNet)."""

DIGITS_TEMPLATES: list[str] = ['a photo of the number: "{}".']
"""CLIP's MNIST template."""

GENERIC_TEMPLATES: list[str] = ["a photo of a {}."]


def humanize(name: str) -> str:
    """'aquarium_fish' -> 'aquarium fish'."""
    return name.replace("_", " ").strip()
