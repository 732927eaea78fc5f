"""The GTSDB look-alike: traffic signs of the four super-categories (shapes, colours, inner
symbols) on street scenes, written as ``FullIJCNN2013`` (PPM images, ``gt.txt``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from qdet.config import SyntheticConfig
from qdet.data import gtsdb
from qdet.data.synthetic.scene import (
    BLACK,
    BLUE,
    GREY,
    RED,
    SUPERSAMPLE,
    WHITE,
    YELLOW,
    background,
    finish,
    place,
)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(size, 6))


def _arrow(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    width: float,
    colour: tuple[int, int, int],
) -> None:
    draw.line([start, end], fill=colour, width=int(width))
    ang = math.atan2(end[1] - start[1], end[0] - start[0])
    head = width * 2.2
    left = (end[0] - head * math.cos(ang - 0.6), end[1] - head * math.sin(ang - 0.6))
    right = (end[0] - head * math.cos(ang + 0.6), end[1] - head * math.sin(ang + 0.6))
    draw.polygon([end, left, right], fill=colour)


def _glyph(draw: ImageDraw.ImageDraw, cls: int, c: float, r: float, colour) -> None:
    """An inner symbol, distinct per class id (digits for speed limits, arrows for mandatory)."""
    speed = {0: "20", 1: "30", 2: "50", 3: "60", 4: "70", 5: "80", 6: "80", 7: "100", 8: "120"}
    if cls in speed:
        text = speed[cls]
        font = _font(int(r * (0.9 if len(text) == 2 else 0.7)))
        draw.text((c, c), text, fill=colour, font=font, anchor="mm")
        return
    w = r * 0.16
    arrows = {
        33: [
            ((c - r * 0.4, c + r * 0.4), (c - r * 0.4, c - r * 0.1)),
            ((c - r * 0.4, c - r * 0.1), (c + r * 0.5, c - r * 0.1)),
        ],
        34: [
            ((c + r * 0.4, c + r * 0.4), (c + r * 0.4, c - r * 0.1)),
            ((c + r * 0.4, c - r * 0.1), (c - r * 0.5, c - r * 0.1)),
        ],
        35: [((c, c + r * 0.6), (c, c - r * 0.6))],
        36: [((c, c + r * 0.6), (c, c - r * 0.6)), ((c, c), (c + r * 0.5, c - r * 0.3))],
        37: [((c, c + r * 0.6), (c, c - r * 0.6)), ((c, c), (c - r * 0.5, c - r * 0.3))],
        38: [((c - r * 0.4, c - r * 0.4), (c + r * 0.4, c + r * 0.4))],
        39: [((c + r * 0.4, c - r * 0.4), (c - r * 0.4, c + r * 0.4))],
    }
    if cls in arrows:
        for start, end in arrows[cls]:
            _arrow(draw, start, end, w, colour)
        return
    if cls == 40:
        draw.arc([c - r * 0.5, c - r * 0.5, c + r * 0.5, c + r * 0.5], 30, 330, fill=colour, width=int(w))
        return
    # Other classes: a deterministic pseudo-pictogram seeded by the class id.
    g = np.random.default_rng(1000 + cls)
    for _ in range(3):
        kind = g.integers(0, 3)
        x0, y0 = c + g.uniform(-0.5, 0.2) * r, c + g.uniform(-0.4, 0.2) * r
        x1, y1 = x0 + g.uniform(0.2, 0.6) * r, y0 + g.uniform(0.2, 0.6) * r
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(w))


def draw_sign(cls: int, size: int) -> Image.Image:
    """An RGBA sign of GTSDB class ``cls`` whose opaque extent fills ``size`` x ``size``."""
    s = size * SUPERSAMPLE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c, r, ring = s / 2, s / 2 - 1, s * 0.11
    if cls in gtsdb.PROHIBITORY or cls == 17:
        d.ellipse([0, 0, s - 1, s - 1], fill=RED)
        d.ellipse([ring, ring, s - 1 - ring, s - 1 - ring], fill=WHITE if cls != 17 else RED)
        if cls == 17:
            d.rectangle([s * 0.18, s * 0.42, s * 0.82, s * 0.58], fill=WHITE)
        else:
            _glyph(d, cls, c, r, BLACK)
    elif cls in gtsdb.DANGER:
        tri = [(c, 0), (s - 1, s - 1), (0, s - 1)]
        d.polygon(tri, fill=RED)
        inset = [
            (c, ring * 1.8),
            (s - 1 - ring * 1.5, s - 1 - ring * 0.7),
            (ring * 1.5, s - 1 - ring * 0.7),
        ]
        d.polygon(inset, fill=WHITE)
        _glyph(d, cls, c, r * 0.55, BLACK) if cls != 18 else d.rectangle(
            [c - s * 0.04, s * 0.4, c + s * 0.04, s * 0.72], fill=BLACK
        )
    elif cls in gtsdb.MANDATORY:
        d.ellipse([0, 0, s - 1, s - 1], fill=BLUE)
        _glyph(d, cls, c, r, WHITE)
    elif cls == 13:  # yield: inverted triangle
        d.polygon([(0, 0), (s - 1, 0), (c, s - 1)], fill=RED)
        d.polygon(
            [(ring * 1.5, ring * 0.7), (s - 1 - ring * 1.5, ring * 0.7), (c, s - 1 - ring * 1.8)],
            fill=WHITE,
        )
    elif cls == 14:  # stop: octagon
        pts = [
            (
                c + r * math.cos(math.pi / 8 + k * math.pi / 4),
                c + r * math.sin(math.pi / 8 + k * math.pi / 4),
            )
            for k in range(8)
        ]
        d.polygon(pts, fill=RED)
        d.text((c, c), "STOP", fill=WHITE, font=_font(int(s * 0.25)), anchor="mm")
    elif cls == 12:  # priority road: diamond
        d.polygon([(c, 0), (s - 1, c), (c, s - 1), (0, c)], fill=WHITE)
        d.polygon(
            [(c, ring * 1.5), (s - 1 - ring * 1.5, c), (c, s - 1 - ring * 1.5), (ring * 1.5, c)],
            fill=YELLOW,
        )
    else:  # end-of signs: white disc, grey ring, diagonal stripes
        d.ellipse([0, 0, s - 1, s - 1], fill=GREY)
        d.ellipse([ring * 0.4, ring * 0.4, s - 1 - ring * 0.4, s - 1 - ring * 0.4], fill=WHITE)
        if cls == 6:
            _glyph(d, cls, c, r, GREY)
        for k in (-1, 0, 1) if cls == 32 else (0,):
            off = k * s * 0.09
            d.line(
                [(s * 0.2 + off, s * 0.8 + off), (s * 0.8 + off, s * 0.2 + off)],
                fill=BLACK,
                width=int(s * 0.05),
            )
    return img.resize((size, size), Image.LANCZOS)


def write_gtsdb(
    root: Path, spec: SyntheticConfig, seed: int, progress: Callable[[int], None] | None = None
) -> Path:
    """Write ``root/FullIJCNN2013/{00000.ppm..., gt.txt}`` in GTSDB's published layout."""
    out = root / "FullIJCNN2013"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    for i in range(spec.num_images):
        name = f"{i:05d}.ppm"
        img = background(rng, spec.width, spec.height)
        taken: list[tuple[int, int, int, int]] = []
        count = 0 if rng.random() < spec.empty_fraction else int(rng.integers(1, spec.max_objects + 1))
        for _ in range(count):
            size = int(np.exp(rng.uniform(np.log(spec.min_object), np.log(spec.max_object))))
            spot = place(rng, spec.width, spec.height, size, size, taken)
            if spot is None:
                continue
            cls = int(rng.integers(0, gtsdb.NUM_CLASSES))
            sign = draw_sign(cls, size)
            sign = Image.fromarray(
                (np.asarray(sign).astype(np.float32) * [*rng.uniform(0.7, 1.1, 3), 1])
                .clip(0, 255)
                .astype(np.uint8)
            )
            img.paste(sign, spot, sign)
            x, y = spot
            if rng.random() < 0.15:  # partial occlusion by a pole or branch
                ImageDraw.Draw(img).rectangle(
                    [
                        x + size * rng.uniform(0.5, 0.8),
                        y - 2,
                        x + size * rng.uniform(0.85, 1.1),
                        y + size + 2,
                    ],
                    fill=tuple(int(c) for c in rng.uniform(30, 120, 3)),
                )
            taken.append((x, y, size, size))
            lines.append(f"{name};{x};{y};{x + size - 1};{y + size - 1};{cls}")
        finish(rng, img).save(out / name)
        if progress:
            progress(i + 1)
    (out / "gt.txt").write_text("\n".join(lines) + "\n")
    (out / "ReadMe.txt").write_text("Synthetic GTSDB look-alike written by qdet (not the real dataset).\n")
    return out
