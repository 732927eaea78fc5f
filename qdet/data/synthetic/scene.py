"""What every synthetic image shares: a cluttered street background, free places for objects,
and the camera's lighting, blur and noise."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RED = (200, 20, 30)
BLUE = (20, 70, 180)
WHITE = (245, 245, 240)
BLACK = (15, 15, 15)
YELLOW = (250, 200, 20)
GREY = (110, 110, 110)
SUPERSAMPLE = 4


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Sky/ground gradient plus clutter: buildings, trees, poles and sign-coloured distractors."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.array(rng.uniform(120, 230, 3))
    ground = np.array(rng.uniform(40, 130, 3))
    horizon = rng.uniform(0.3, 0.7)
    top = sky * (1 - 0.4 * y / horizon)
    bottom = ground * (0.8 + 0.4 * (y - horizon))
    arr = np.where(y < horizon, top, bottom) * np.ones((1, width, 1))
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(6, 16)):
        kind = rng.integers(0, 5)
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(10, width / 3), rng.uniform(10, height / 2)
        colour = tuple(int(c) for c in rng.uniform(30, 220, 3))
        if kind == 0:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=(30, int(rng.uniform(80, 160)), 40))
        elif kind == 2:
            draw.line([x0, y0, x0 + rng.uniform(-5, 5), y0 + h], fill=GREY, width=4)
        elif kind == 3:  # distractor: a sign-coloured blob that is not a sign
            r = rng.uniform(6, 30)
            draw.ellipse(
                [x0, y0, x0 + r * rng.uniform(1, 3), y0 + r],
                fill=RED if rng.random() < 0.5 else BLUE,
            )
        else:
            for i in range(int(rng.integers(2, 6))):
                draw.line([x0, y0 + i * 8, x0 + w, y0 + i * 8], fill=colour, width=2)
    return img


def place(
    rng: np.random.Generator,
    width: int,
    height: int,
    w: int,
    h: int,
    taken: list[tuple[int, int, int, int]],
    tries: int = 30,
) -> tuple[int, int] | None:
    """Top-left corner for a w x h object that overlaps none of ``taken``."""
    for _ in range(tries):
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in taken):
            return x, y
    return None


def finish(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Global lighting, blur and sensor noise."""
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    arr = np.asarray(img).astype(np.float32) * rng.uniform(0.6, 1.3)
    arr += rng.normal(0, rng.uniform(2, 10), arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
