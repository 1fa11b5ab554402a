"""Procedurally rendered, captioned images: the micro-CLIP's pretraining corpus and the `shapes` dataset.

A scene is one to three shapes, or a digit or a letter drawn with PIL's bundled font, in a colour, a size, a
texture and a place on a background; `render` draws it as a square uint8 RGB image and `caption` says it
in one of several phrasings. Everything is drawn from a `numpy.random.Generator`, so a seed gives the same
images and captions on every machine. Scenes are drawn at 4x the size and box-filtered down (antialiasing),
and some are then blurred to a lower resolution and back, as a photo of a small thing is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 50, 190),
    "pink": (245, 120, 190),
    "cyan": (40, 210, 220),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
COUNT_NAMES = {1: "one", 2: "two", 3: "three"}
SIZES = ("small", "large")
TEXTURES = ("solid", "striped", "dotted", "outlined")
PLACES = ("center", "left", "right", "top", "bottom")
_PLACE_PHRASES = {
    "center": "in the middle",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Scene:
    """What an image shows. `kind` is 'shape', 'digit' or 'letter'; `thing` the shape, digit name or letter."""

    kind: str
    thing: str
    colour: str
    background: str
    size: str = "large"
    texture: str = "solid"
    place: str = "center"
    count: int = 1
    angle: float = 0.0
    """Rotation in degrees (digits and letters: a slant; shapes: a turn)."""
    stroke: int = 0
    """Extra pen width of digits and letters, in pixels of the output size."""
    low_res: int | None = None
    """Blurred down to this many pixels and back, or None."""


def draw_scene(rng: np.random.Generator, kinds: tuple[str, ...] = ("shape", "digit", "letter")) -> Scene:
    """A random scene; its foreground and background colours differ."""
    kind = kinds[rng.integers(len(kinds))]
    thing = {"shape": SHAPES, "digit": DIGIT_NAMES, "letter": LETTERS}[kind]
    colour, background = rng.choice(list(COLOURS), size=2, replace=False)
    if kind == "shape":
        count = int(rng.choice([1, 1, 2, 3]))
        size = SIZES[rng.integers(2)] if count == 1 else "small"
        place = PLACES[rng.integers(len(PLACES))] if count == 1 and size == "small" else "center"
        return Scene(
            "shape", str(thing[rng.integers(len(thing))]), str(colour), str(background), size,
            TEXTURES[rng.integers(len(TEXTURES))], place, count, float(rng.uniform(-30, 30)),
            low_res=_low_res(rng),
        )  # fmt: skip
    if rng.random() < 0.25:  # as text mostly is: light on dark or dark on light
        colour, background = ("white", "black") if rng.random() < 0.5 else ("black", "white")
    return Scene(
        kind, str(thing[rng.integers(len(thing))]), str(colour), str(background),
        angle=float(rng.uniform(-15, 15)), stroke=int(rng.integers(0, 4)), low_res=_low_res(rng, glyph=True),
    )  # fmt: skip


def _low_res(rng: np.random.Generator, glyph: bool = False) -> int | None:
    """None (full resolution) or the size a scene is blurred to; glyphs are blurred more often (small print)."""
    sizes = [None, None, 16, 12, 8, 8] if glyph else [None, None, 16, 12, 8]
    return sizes[rng.integers(len(sizes))]


def render(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """[size, size, 3] uint8: `scene` drawn at 4x, shrunk with a box filter (and blurred if `low_res`)."""
    big = size * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), _jitter(COLOURS[scene.background], rng))
    if scene.kind == "shape":
        for centre, radius in _layout(scene, big, rng):
            _draw_shape(image, scene, centre, radius, rng)
    else:
        _draw_glyph(image, scene, big, rng)
    image = image.resize((size, size), Image.Resampling.BOX)
    if scene.low_res is not None and scene.low_res < size:
        image = image.resize((scene.low_res,) * 2, Image.Resampling.BOX).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, spread: int = 25) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(np.array(rgb) + rng.integers(-spread, spread + 1, 3), 0, 255))


def _layout(scene: Scene, big: int, rng: np.random.Generator) -> list[tuple[tuple[float, float], float]]:
    """(centre, radius) of each shape, inside the image and apart from each other."""
    radius = big * (0.36 if scene.size == "large" else 0.17) * rng.uniform(0.85, 1.1)
    if scene.count == 1:
        offset = big * 0.27
        dx, dy = {"center": (0, 0), "left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[scene.place]
        jitter = rng.uniform(-0.04, 0.04, 2) * big
        return [((big / 2 + dx * offset + jitter[0], big / 2 + dy * offset + jitter[1]), radius)]
    slots = [(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)]
    chosen = rng.choice(len(slots), size=scene.count, replace=False)
    return [((slots[i][0] * big, slots[i][1] * big), radius) for i in chosen]


def _polygon(sides: int, centre: tuple[float, float], radius: float, angle: float, inner: float = 1.0) -> list:
    """Vertices of a regular polygon (a star when `inner` < 1: every other vertex at `inner` x radius)."""
    points = []
    count = sides * (2 if inner < 1 else 1)
    for i in range(count):
        r = radius * (inner if i % 2 else 1.0) if inner < 1 else radius
        theta = math.radians(angle) + 2 * math.pi * i / count - math.pi / 2
        points.append((centre[0] + r * math.cos(theta), centre[1] + r * math.sin(theta)))
    return points


def _outline(kind: str, centre: tuple[float, float], radius: float, angle: float) -> list | None:
    """The shape's polygon; None for the round ones."""
    x, y = centre
    if kind == "square":
        return _polygon(4, centre, radius, angle + 45)
    if kind == "triangle":
        return _polygon(3, (x, y + radius * 0.15), radius * 1.1, angle)
    if kind == "star":
        return _polygon(5, centre, radius * 1.1, angle, inner=0.45)
    if kind == "diamond":
        return [(x + radius * 0.7 * c, y + radius * s) for c, s in ((0, -1), (1, 0), (0, 1), (-1, 0))]
    if kind == "hexagon":
        return _polygon(6, centre, radius, angle)
    if kind == "cross":
        arm = radius * 0.33
        quarter = [(-arm, -radius), (arm, -radius), (arm, -arm)]  # one arm's corners, turned 4 times
        corners = [_turn90(point, k) for k in range(4) for point in quarter]
        turn = math.radians(angle)
        return [
            (x + px * math.cos(turn) - py * math.sin(turn), y + px * math.sin(turn) + py * math.cos(turn))
            for px, py in corners
        ]
    return None


def _turn90(point: tuple[float, float], times: int) -> tuple[float, float]:
    x, y = point
    for _ in range(times):
        x, y = -y, x
    return x, y


def _draw_shape(image: Image.Image, scene: Scene, centre, radius: float, rng: np.random.Generator) -> None:
    big = image.size[0]
    colour = _jitter(COLOURS[scene.colour], rng)
    mask = Image.new("L", image.size, 0)
    pen = ImageDraw.Draw(mask)
    points = _outline(scene.thing, centre, radius, scene.angle)
    box = [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius]
    line = max(2, int(big * 0.035))
    if scene.thing == "ring":
        pen.ellipse(box, outline=255, width=max(line, int(radius * 0.35)))
    elif scene.texture == "outlined":
        pen.ellipse(box, outline=255, width=line) if points is None else pen.polygon(points, outline=255, width=line)
    else:
        pen.ellipse(box, fill=255) if points is None else pen.polygon(points, fill=255)
        if scene.texture in ("striped", "dotted"):
            _punch_texture(mask, scene.texture, big, rng)
    image.paste(Image.new("RGB", image.size, colour), (0, 0), mask)


def _punch_texture(mask: Image.Image, texture: str, big: int, rng: np.random.Generator) -> None:
    """Cut stripes or a grid of holes out of a filled shape's mask."""
    pen = ImageDraw.Draw(mask)
    step = max(4, big // 8)
    phase = int(rng.integers(step))
    if texture == "striped":
        for x in range(-big + phase, big * 2, step):
            pen.line([(x, 0), (x + big, big)], fill=0, width=max(2, step // 3))
        return
    radius = max(1, step // 5)
    for y in range(phase % step, big, step):
        for x in range(phase % step, big, step):
            pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=0)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw_glyph(image: Image.Image, scene: Scene, big: int, rng: np.random.Generator) -> None:
    """A digit or letter: PIL's bundled font, scaled to fill most of the image, slanted, in a pen width."""
    text = str(DIGIT_NAMES.index(scene.thing)) if scene.kind == "digit" else scene.thing
    mask = Image.new("L", image.size, 0)
    if scene.kind == "digit" and rng.random() < 0.5:
        _draw_strokes(mask, scene.thing, rng, width=int(big * 0.06) + scene.stroke * _SUPERSAMPLE)
    else:
        font = _font(int(big * rng.uniform(0.75, 0.95)))
        stroke = scene.stroke * _SUPERSAMPLE
        pen = ImageDraw.Draw(mask)
        left, top, right, bottom = pen.textbbox((0, 0), text, font=font, stroke_width=stroke)
        shift = rng.uniform(-0.06, 0.06, 2) * big
        origin = ((big - (right - left)) / 2 - left + shift[0], (big - (bottom - top)) / 2 - top + shift[1])
        pen.text(origin, text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    mask = mask.rotate(scene.angle, resample=Image.Resampling.BILINEAR)
    if scene.stroke == 0 and rng.random() < 0.3:
        mask = mask.filter(ImageFilter.MaxFilter(3))
    image.paste(Image.new("RGB", image.size, _jitter(COLOURS[scene.colour], rng)), (0, 0), mask)


_ARC = {"top": (180, 360), "bottom": (0, 180), "right": (270, 450), "left": (90, 270), "full": (0, 360)}
DIGIT_STROKES: dict[str, list[tuple]] = {
    "zero": [("arc", (0.25, 0.1, 0.75, 0.9), "full")],
    "one": [("line", [(0.35, 0.25), (0.55, 0.1), (0.55, 0.9)])],
    "two": [("arc", (0.25, 0.1, 0.75, 0.5), "top"), ("line", [(0.75, 0.3), (0.25, 0.9), (0.78, 0.9)])],
    "three": [("arc", (0.28, 0.1, 0.72, 0.5), "right"), ("arc", (0.25, 0.5, 0.75, 0.9), "right")],
    "four": [("line", [(0.65, 0.9), (0.65, 0.1), (0.2, 0.65), (0.82, 0.65)])],
    "five": [("line", [(0.75, 0.1), (0.3, 0.1), (0.27, 0.45)]), ("arc", (0.25, 0.4, 0.75, 0.9), "right")],
    "six": [("line", [(0.68, 0.1), (0.3, 0.55)]), ("arc", (0.25, 0.45, 0.75, 0.9), "full")],
    "seven": [("line", [(0.22, 0.1), (0.78, 0.1), (0.4, 0.9)])],
    "eight": [("arc", (0.3, 0.1, 0.7, 0.5), "full"), ("arc", (0.25, 0.5, 0.75, 0.9), "full")],
    "nine": [("arc", (0.25, 0.1, 0.75, 0.55), "full"), ("line", [(0.73, 0.35), (0.68, 0.9)])],
}
"""Each digit as pen strokes on the unit square: polylines and ellipse arcs, drawn with a jittered, thick pen
(a second, hand-drawn hand besides the font, whose glyphs handwriting does not resemble closely)."""


def _draw_strokes(mask: Image.Image, digit: str, rng: np.random.Generator, width: int) -> None:
    big = mask.size[0]
    pen = ImageDraw.Draw(mask)

    def at(x: float, y: float) -> tuple[float, float]:
        dx, dy = rng.normal(0, 0.03, 2)
        return ((0.1 + 0.8 * (x + dx)) * big, (0.05 + 0.9 * (y + dy)) * big)

    for kind, shape, *rest in DIGIT_STROKES[digit]:
        if kind == "line":
            points = [at(x, y) for x, y in shape]
            pen.line(points, fill=255, width=width, joint="curve")
            for x, y in (points[0], points[-1]):
                pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
        else:
            (x0, y0), (x1, y1) = at(*shape[:2]), at(*shape[2:])
            start, end = _ARC[rest[0]]
            box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
            pen.arc(box, start + rng.normal(0, 8), end + rng.normal(0, 8), fill=255, width=width)


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One of several phrasings of what `scene` shows (not every one names every attribute)."""
    if scene.kind == "shape":
        return _shape_caption(scene, rng)
    if scene.kind == "digit":
        digit = str(DIGIT_NAMES.index(scene.thing))
        options = [
            f'a photo of the number: "{scene.thing}".',
            f"the digit {scene.thing}.",
            f"a {scene.colour} {scene.thing} on a {scene.background} background.",
            f"the number {digit}.",
            f"a handwritten {scene.thing}.",
            f"a blurry photo of the number {scene.thing}.",
            f"a {scene.thing}.",
            f"the number {scene.thing} in {scene.colour}.",
        ]
    else:
        options = [
            f'a photo of the letter: "{scene.thing}".',
            f"the letter {scene.thing}.",
            f"a {scene.colour} letter {scene.thing} on {scene.background}.",
            f"a capital {scene.thing}.",
            f"the letter {scene.thing.lower()} in {scene.colour}.",
        ]
    return options[rng.integers(len(options))]


def _shape_caption(scene: Scene, rng: np.random.Generator) -> str:
    many = scene.count > 1
    noun = scene.thing + ("es" if many and scene.thing.endswith("s") else "s" if many else "")
    texture = "" if scene.texture == "solid" or scene.thing == "ring" else f"{scene.texture} "
    count = COUNT_NAMES[scene.count] if many else "a"
    where = "" if scene.count > 1 or scene.place == "center" else f" {_PLACE_PHRASES[scene.place]}"
    size = f"{scene.size} " if not many else ""
    options = [
        f"a photo of {count} {scene.colour} {noun}.",
        f"{count} {size}{texture}{scene.colour} {noun}{where}.",
        f"a drawing of {count} {texture}{noun} on a {scene.background} background.",
        f"{count} {scene.colour} {noun}{where}.",
        f"a {scene.thing} shape." if not many else f"{count} {noun}.",
        f"a photo of a {scene.thing}." if not many else f"a photo of {count} {noun}.",
    ]
    return " ".join(options[rng.integers(len(options))].split())
