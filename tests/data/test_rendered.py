"""The rendered corpus and the `shapes` dataset: seeded, varied, and captioned with what they show."""

from __future__ import annotations

import numpy as np

from clipstudy.data.rendered import DIGIT_NAMES, SHAPES, Scene, caption, draw_scene, render
from clipstudy.data.shapes import PER_CLASS, render_shapes


def scenes_and_images(seed: int, count: int = 40):
    rng = np.random.default_rng(seed)
    scenes = [draw_scene(rng) for _ in range(count)]
    return scenes, [render(scene, 32, rng) for scene in scenes], [caption(scene, rng) for scene in scenes]


def test_a_seed_gives_the_same_images_and_captions():
    first, second, other = scenes_and_images(3), scenes_and_images(3), scenes_and_images(4)
    assert first[0] == second[0] and first[2] == second[2]
    assert all(np.array_equal(a, b) for a, b in zip(first[1], second[1], strict=True))
    assert first[2] != other[2]


def test_images_are_square_uint8_and_all_different():
    _, images, _ = scenes_and_images(0)
    assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for image in images)
    assert len({image.tobytes() for image in images}) == len(images)


def test_every_caption_names_what_is_drawn():
    scenes, _, captions = scenes_and_images(1, count=200)
    for scene, text in zip(scenes, captions, strict=True):
        names = {scene.thing, scene.thing.lower()}
        if scene.kind == "digit":
            names.add(str(DIGIT_NAMES.index(scene.thing)))
        assert any(name in text for name in names), (scene, text)
    assert len({scene.kind for scene in scenes}) == 3 and len(set(captions)) > 100


def test_the_foreground_is_drawn_in_its_colour():
    rng = np.random.default_rng(0)
    image = render(Scene("shape", "square", "red", "white", size="large"), 32, rng).astype(int)
    centre, corner = image[14:18, 14:18].mean((0, 1)), image[:3, :3].mean((0, 1))
    assert centre[0] > 150 and centre[1] < 100 and centre[2] < 100  # red
    assert corner.min() > 200  # white


def test_shapes_is_class_major_and_the_same_every_time():
    split = render_shapes()
    assert split.images.shape == (len(SHAPES) * PER_CLASS, 3, 32, 32)
    assert split.labels.tolist() == [c for c in range(len(SHAPES)) for _ in range(PER_CLASS)]
    render_shapes.cache_clear()
    again = render_shapes()
    assert np.array_equal(again.images.numpy(), split.images.numpy())
