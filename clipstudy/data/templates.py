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

# CLIP's per-dataset templates (Radford et al. 2021, data/prompts.md of the CLIP repository); their
# first entry is also the single template CoOp and CLIP-CITE use (up to wording, e.g. DTD, UCF101).
FLOWERS_TEMPLATES: list[str] = ["a photo of a {}, a type of flower."]
AIRCRAFT_TEMPLATES: list[str] = ["a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft."]
DTD_TEMPLATES: list[str] = [
    "a photo of a {} texture.",
    "a photo of a {} pattern.",
    "a photo of a {} thing.",
    "a photo of a {} object.",
    "a photo of the {} texture.",
    "a photo of the {} pattern.",
    "a photo of the {} thing.",
    "a photo of the {} object.",
]
FOOD_TEMPLATES: list[str] = ["a photo of {}, a type of food."]
PETS_TEMPLATES: list[str] = ["a photo of a {}, a type of pet."]
EUROSAT_TEMPLATES: list[str] = [
    "a centered satellite photo of {}.",
    "a centered satellite photo of a {}.",
    "a centered satellite photo of the {}.",
]
CALTECH_TEMPLATES: list[str] = [
    "a photo of a {}.",
    "a painting of a {}.",
    "a plastic {}.",
    "a sculpture of a {}.",
    "a sketch of a {}.",
    "a tattoo of a {}.",
    "a toy {}.",
    "a rendition of a {}.",
    "a embroidered {}.",
    "a cartoon {}.",
    "a {} in a video game.",
    "a plushie {}.",
    "a origami {}.",
    "art of a {}.",
    "graffiti of a {}.",
    "a drawing of a {}.",
    "a doodle of a {}.",
    "a photo of the {}.",
    "a painting of the {}.",
    "the plastic {}.",
    "a sculpture of the {}.",
    "a sketch of the {}.",
    "a tattoo of the {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "the embroidered {}.",
    "the cartoon {}.",
    "the {} in a video game.",
    "the plushie {}.",
    "the origami {}.",
    "art of the {}.",
    "graffiti of the {}.",
    "a drawing of the {}.",
    "a doodle of the {}.",
]
SUN_TEMPLATES: list[str] = ["a photo of a {}.", "a photo of the {}."]
CARS_TEMPLATES: list[str] = [
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of my {}.",
    "i love my {}!",
    "a photo of my dirty {}.",
    "a photo of my clean {}.",
    "a photo of my new {}.",
    "a photo of my old {}.",
]
UCF_TEMPLATES: list[str] = [
    f"a {medium} of {article} person {verb}{{}}."
    for verb in ("", "using ", "doing ", "during ", "performing ", "practicing ")
    for article in ("a", "the")
    for medium in ("photo", "video", "example", "demonstration")
]
"""CLIP's 48 UCF101 templates, in its order ('a photo of a person {}.', 'a video of a person {}.', ...)."""


def imagenet_templates() -> list[str]:
    """CLIP's 80 ImageNet templates as open_clip ships them, with 'a photo of a {}.' moved first (the
    single-template choice, as in CoOp); the ensemble is the same set."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES

    templates = [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
    templates.remove("a photo of a {}.")
    return ["a photo of a {}.", *templates]


def choose_templates(templates: list[str], mode: str) -> list[str]:
    """`prompts.templates`: the whole ensemble, or its first template ('single')."""
    return templates[:1] if mode == "single" else list(templates)


def humanize(name: str) -> str:
    """'aquarium_fish' -> 'aquarium fish'."""
    return name.replace("_", " ").strip()
