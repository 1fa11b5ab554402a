"""`shapes`: eight shape classes rendered apart from the micro-CLIP's corpus, a second offline task.

The same renderer as the corpus (`clipstudy.data.rendered`) but its own draws: one shape per image, any
colour, size, texture and place, some blurred. Its role is what ImageNet or DTD play for a real CLIP: a
task the model was not fine-tuned on, to measure retention (`eval.retention: [shapes]`) and base-to-new.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import Source, Split, register_dataset
from clipstudy.data.rendered import SHAPES, draw_scene, render

SHAPES_TEMPLATES: list[str] = ["a photo of a {}.", "a drawing of a {}.", "a {} shape."]
PER_CLASS = 60
SIZE = 32
_SEED = (20261203, 8)
"""Its own random stream: the corpus draws from (seed, chunk) pairs, this from a 2-element seed of its own."""


@cache
def render_shapes() -> Split:
    """[8 x 60, 3, 32, 32] uint8, class-major, the same on every machine (rendered once per process)."""
    rng = np.random.default_rng(_SEED)
    images, labels = [], []
    for label, shape in enumerate(SHAPES):
        for _ in range(PER_CLASS):
            scene = replace(draw_scene(rng, kinds=("shape",)), thing=shape, count=1)
            images.append(render(scene, SIZE, rng))
            labels.append(label)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Split(pixels, torch.tensor(labels, dtype=torch.int64))


@register_dataset("shapes", origin="builtin")
def load_shapes(cfg: DataConfig, image_size: int) -> Source:
    """480 images of 32 px (the engine resizes them to the model's size on the device); no test split."""
    split = render_shapes()
    return Source(list(SHAPES), list(SHAPES_TEMPLATES), Split(split.images.clone(), split.labels.clone()))
