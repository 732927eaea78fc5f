"""Synthetic look-alikes of GTSDB and PennFudan, written in the real datasets' raw layouts.

Deterministic by seed. The task is meant to be learnable in minutes but not trivial: signs of
several shapes, colours and inner symbols on cluttered backgrounds, with blur, noise, occlusion
and lighting changes; people of varied size and pose with instance masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from qdet.config import SyntheticConfig
from qdet.data import gtsdb

RED = (200, 20, 30)
BLUE = (20, 70, 180)
WHITE = (245, 245, 240)
BLACK = (15, 15, 15)
YELLOW = (250, 200, 20)
GREY = (110, 110, 110)
SUPERSAMPLE = 4


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
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


def _place(
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


def _finish(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Global lighting, blur and sensor noise."""
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    arr = np.asarray(img).astype(np.float32) * rng.uniform(0.6, 1.3)
    arr += rng.normal(0, rng.uniform(2, 10), arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


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
        img = _background(rng, spec.width, spec.height)
        taken: list[tuple[int, int, int, int]] = []
        count = 0 if rng.random() < spec.empty_fraction else int(rng.integers(1, spec.max_objects + 1))
        for _ in range(count):
            size = int(np.exp(rng.uniform(np.log(spec.min_object), np.log(spec.max_object))))
            spot = _place(rng, spec.width, spec.height, size, size, taken)
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
        _finish(rng, img).save(out / name)
        if progress:
            progress(i + 1)
    (out / "gt.txt").write_text("\n".join(lines) + "\n")
    (out / "ReadMe.txt").write_text("Synthetic GTSDB look-alike written by qdet (not the real dataset).\n")
    return out


def _draw_person(
    draw: ImageDraw.ImageDraw,
    mask: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    x: int,
    y: int,
    h: int,
    k: int,
) -> None:
    """A stick-and-blob pedestrian of height ``h`` whose top-left is near (x, y); mask value k."""
    w = h * 0.4
    cx = x + w / 2
    head = h * 0.13
    shirt = tuple(int(c) for c in rng.uniform(20, 230, 3))
    trousers = tuple(int(c) for c in rng.uniform(10, 120, 3))
    skin = tuple(int(c) for c in rng.uniform(150, 230) * np.array([1.0, 0.8, 0.65]))
    limb = max(int(h * 0.07), 2)
    stride = rng.uniform(-0.25, 0.25) * w
    arm = rng.uniform(-0.3, 0.3) * w
    parts = [
        ("ellipse", [cx - head / 2, y, cx + head / 2, y + head], skin),
        ("rect", [cx - w * 0.25, y + head, cx + w * 0.25, y + h * 0.55], shirt),
        ("line", [(cx - w * 0.22, y + head * 1.3), (cx - w * 0.45 + arm, y + h * 0.5)], shirt),
        ("line", [(cx + w * 0.22, y + head * 1.3), (cx + w * 0.45 - arm, y + h * 0.5)], shirt),
        ("line", [(cx - w * 0.12, y + h * 0.55), (cx - w * 0.2 - stride, y + h - 1)], trousers),
        ("line", [(cx + w * 0.12, y + h * 0.55), (cx + w * 0.2 + stride, y + h - 1)], trousers),
    ]
    for kind, geom, colour in parts:
        for target, fill in ((draw, colour), (mask, k)):
            if kind == "ellipse":
                target.ellipse(geom, fill=fill)
            elif kind == "rect":
                target.rectangle(geom, fill=fill)
            else:
                target.line(geom, fill=fill, width=limb)


PENNFUDAN_HEADER = (
    "# Compatible with PASCAL Annotation Version 1.00\n"
    'Image filename : "PennFudanPed/PNGImages/{name}.png"\n'
    "Image size (X x Y x C) : {w} x {h} x 3\n"
    'Database : "The Penn-Fudan-Pedestrian Database"\n'
    "Objects with ground truth : {n} {{ {labels} }}\n"
    "# Note there may be some objects not included in the ground truth list for they are severe-occluded\n"
    "# or have very small size.\n"
    "# Top left pixel co-ordinates : (1, 1)\n"
)
PENNFUDAN_OBJECT = (
    '# Details for pedestrian {i} ("PASpersonWalking")\n'
    'Original label for object {i} "PASpersonWalking" : "PennFudanPed"\n'
    'Bounding box for object {i} "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : '
    "({x0}, {y0}) - ({x1}, {y1})\n"
    'Pixel mask for object {i} "PASpersonWalking" : "PennFudanPed/PedMasks/{name}_mask.png"\n'
)


def write_pennfudan(
    root: Path, spec: SyntheticConfig, seed: int, progress: Callable[[int], None] | None = None
) -> Path:
    """Write ``root/PennFudanPed/{PNGImages,PedMasks,Annotation}`` in the published layout.

    Boxes in the text annotations are 1-based inclusive, as in the real files; people are never
    left out (PennFudan has no negative images, ``empty_fraction`` is ignored).
    """

    out = root / "PennFudanPed"
    for sub in ("PNGImages", "PedMasks", "Annotation"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    min_h, max_h = max(spec.min_object * 2, 24), max(spec.max_object * 2, 32)
    for i in range(spec.num_images):
        name = f"{'FudanPed' if i % 2 else 'PennPed'}{i + 1:05d}"
        w = int(spec.width * rng.uniform(0.85, 1.0))
        h = int(spec.height * rng.uniform(0.85, 1.0))
        img = _background(rng, w, h)
        mask = Image.new("L", (w, h), 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        taken: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, spec.max_objects + 1))):
            ph = int(rng.uniform(min_h, min(max_h, h - 2)))
            pw = int(ph * 0.55)
            spot = _place(rng, w, h, pw, ph, taken)
            if spot is not None:
                taken.append((*spot, pw, ph))
        for k, (x, y, _w, ph) in enumerate(taken, start=1):
            _draw_person(draw, mdraw, rng, x, y, ph, k)
        m = np.asarray(mask)
        objects = []
        for k in range(1, len(taken) + 1):
            ys, xs = np.nonzero(m == k)
            objects.append(
                PENNFUDAN_OBJECT.format(
                    i=k,
                    x0=xs.min() + 1,
                    y0=ys.min() + 1,
                    x1=xs.max() + 1,
                    y1=ys.max() + 1,
                    name=name,
                )
            )
        _finish(rng, img).save(out / "PNGImages" / f"{name}.png")
        mask.save(out / "PedMasks" / f"{name}_mask.png")
        labels = " ".join(['"PASpersonWalking"'] * len(taken))
        header = PENNFUDAN_HEADER.format(name=name, w=w, h=h, n=len(taken), labels=labels)
        (out / "Annotation" / f"{name}.txt").write_text(header + "".join(objects))
        if progress:
            progress(i + 1)
    return out


GENERATORS = {"gtsdb": write_gtsdb, "pennfudan": write_pennfudan}
