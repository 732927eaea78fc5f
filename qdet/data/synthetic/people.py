"""The PennFudan look-alike: people of varied size and pose with instance masks, written as
``PennFudanPed`` (PNG images, masks, text annotations)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from qdet.config import SyntheticConfig
from qdet.data.synthetic.scene import background, finish, place


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
        img = background(rng, w, h)
        mask = Image.new("L", (w, h), 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        taken: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, spec.max_objects + 1))):
            ph = int(rng.uniform(min_h, min(max_h, h - 2)))
            pw = int(ph * 0.55)
            spot = place(rng, w, h, pw, ph, taken)
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
        finish(rng, img).save(out / "PNGImages" / f"{name}.png")
        mask.save(out / "PedMasks" / f"{name}_mask.png")
        labels = " ".join(['"PASpersonWalking"'] * len(taken))
        header = PENNFUDAN_HEADER.format(name=name, w=w, h=h, n=len(taken), labels=labels)
        (out / "Annotation" / f"{name}.txt").write_text(header + "".join(objects))
        if progress:
            progress(i + 1)
    return out
