"""Raw dataset layouts -> :class:`ImageRecord` lists: GTSDB gt.txt, PennFudan masks+text, VOC XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from qdet.data import gtsdb
from qdet.data.records import Box, DataError, ImageRecord, Report, clip_box, similar_class_names
from qdet.serving.image_input import ImageReadError, displayed_size


def image_size(
    path: Path, report: Report, annotated: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """(width, height) of a readable image as displayed (EXIF orientation applied, as training
    reads it); a missing, corrupt or oversized file is skipped and counted.

    ``annotated``: the size an annotation file gives. An image turned by its EXIF orientation
    whose annotation matches the stored, unturned pixels was labelled sideways: its boxes would
    land in the wrong place, so it is skipped with that reason."""
    if not path.exists():
        report.skip(str(path), "image file is missing")
        return None
    try:
        shown, stored = displayed_size(str(path))  # decodes fully: a truncated file fails here
    except ImageReadError as exc:
        report.skip(str(path), str(exc))
        return None
    if annotated is not None and annotated != shown:
        if annotated == stored:
            report.skip(
                str(path),
                f"annotated as {annotated[0]}x{annotated[1]}, the stored pixels, but its EXIF orientation "
                f"shows it as {shown[0]}x{shown[1]}: the boxes were drawn on the unturned image; "
                "re-annotate it upright or remove its orientation tag",
            )
            return None
        report.warnings.append(
            f"{path}: annotation says {annotated[0]}x{annotated[1]}, the image is {shown[0]}x{shown[1]}; "
            "boxes are clipped to the image"
        )
    return shown


def find_root(raw: Path, marker: str) -> Path:
    """The folder below ``raw`` that holds ``marker`` (archives nest their content differently)."""
    hits = sorted(raw.rglob(marker), key=lambda p: len(p.parts))
    if not hits:
        raise DataError(f"{raw}: no {marker} found; is this the right dataset?")
    return hits[0].parent


def parse_gtsdb(raw: Path, classes: str, min_box_size: float, report: Report) -> list[ImageRecord]:
    """GTSDB: ``gt.txt`` lines ``00000.ppm;left;top;right;bottom;class`` (0-based, inclusive).

    Every ``*.ppm`` in the folder is an image; those without a line are kept as negatives.
    """
    root = find_root(raw, "gt.txt")
    gt = root / "gt.txt"
    boxes: dict[str, list[Box]] = defaultdict(list)
    # splitlines() also strips CRLF endings, and utf-8-sig a byte-order mark, as Windows tools write
    text = gt.read_text(encoding="utf-8-sig", errors="replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{gt}:{lineno}"
        if not line.strip():
            continue
        fields = line.strip().split(";")
        if len(fields) != 6:
            report.skip(where, f"expected 6 ';'-separated fields, got {len(fields)}: {line!r}")
            continue
        name, *numbers = fields
        try:
            left, top, right, bottom, cls = (int(v) for v in numbers)
        except ValueError:
            report.skip(where, f"non-integer field in {line!r}")
            continue
        if not 0 <= cls < gtsdb.NUM_CLASSES:
            report.skip(where, f"class id {cls} outside 0..{gtsdb.NUM_CLASSES - 1}")
            continue
        if right < left or bottom < top:
            report.skip(where, f"box has right<left or bottom<top: {line!r}")
            continue
        if not (root / name).exists():
            report.skip(where, f"image {name} does not exist")
            continue
        boxes[name].append(Box(gtsdb.class_name(cls, classes), left, top, right + 1, bottom + 1))
    records = []
    for path in sorted(p for p in root.glob("*.ppm")):
        size = image_size(path, report)
        if size is None:
            continue
        w, h = size
        kept = []
        for i, box in enumerate(boxes.get(path.name, [])):
            b = clip_box(box, w, h, min_box_size, f"{gt} ({path.name}, box {i + 1})", report)
            if b is not None:
                kept.append(b)
        records.append(ImageRecord(path, path.name, w, h, kept))
    return records


_PF_BOX = re.compile(
    r'Bounding box for object (\d+) "[^"]*" \(Xmin, Ymin\) - \(Xmax, Ymax\) : '
    r"\((\d+), (\d+)\) - \((\d+), (\d+)\)"
)


def parse_pennfudan_text(path: Path) -> dict[int, Box]:
    """PASCAL v1.00 text annotation -> {object number: box in pixel-edge coordinates}."""
    out = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        m = _PF_BOX.search(line)
        if m:
            k, x0, y0, x1, y1 = (int(v) for v in m.groups())
            out[k] = Box("person", x0 - 1, y0 - 1, x1, y1)  # 1-based inclusive -> edges
    return out


def parse_pennfudan(
    raw: Path, min_box_size: float, report: Report, tolerance: float = 3.0
) -> list[ImageRecord]:
    """PennFudan: boxes from instance masks (0 = background, k = instance k), cross-checked
    against the text annotations; a disagreement over ``tolerance`` pixels is reported."""
    root = find_root(raw, "PNGImages")
    records = []
    for path in sorted(p for p in (root / "PNGImages").iterdir() if p.suffix.lower() == ".png"):
        size = image_size(path, report)
        if size is None:
            continue
        w, h = size
        mask_path = root / "PedMasks" / f"{path.stem}_mask.png"
        text_path = root / "Annotation" / f"{path.stem}.txt"
        text_boxes = parse_pennfudan_text(text_path) if text_path.exists() else {}
        if not text_path.exists():
            report.warnings.append(f"{text_path}: missing text annotation; boxes from mask only")
        try:
            mask = np.asarray(Image.open(mask_path))
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            report.skip(str(mask_path), f"instance mask missing or unreadable ({exc})")
            continue
        if mask.shape[:2] != (h, w):
            report.skip(str(mask_path), f"mask is {mask.shape[1]}x{mask.shape[0]}, image {w}x{h}")
            continue
        ids = [int(k) for k in np.unique(mask) if k != 0]
        boxes = []
        for k in ids:
            ys, xs = np.nonzero(mask == k)
            box = Box("person", float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            ref = text_boxes.get(k)
            if ref is None and text_path.exists():
                report.warnings.append(f"{text_path}: mask instance {k} has no (readable) text box")
            elif ref is not None:
                diff = max(
                    abs(a - b)
                    for a, b in zip(
                        (box.x_min, box.y_min, box.x_max, box.y_max),
                        (ref.x_min, ref.y_min, ref.x_max, ref.y_max),
                        strict=True,
                    )
                )
                if diff > tolerance:
                    report.warnings.append(
                        f"{text_path}: object {k} text box differs from its mask box by {diff:g} px"
                    )
            b = clip_box(box, w, h, min_box_size, f"{mask_path} (instance {k})", report)
            if b is not None:
                boxes.append(b)
        extra = sorted(set(text_boxes) - set(ids))
        if extra:
            report.warnings.append(f"{text_path}: objects {extra} have no pixels in {mask_path.name}")
        records.append(ImageRecord(path, path.name, w, h, boxes))
    return records


def _xml_number(obj: ET.Element, tag: str, where: str) -> float:
    node = obj.find(f"bndbox/{tag}")
    if node is None or node.text is None:
        raise DataError(f"{where}: <bndbox> lacks <{tag}>")
    try:
        return float(node.text)
    except ValueError as exc:
        raise DataError(f"{where}: <{tag}> is not a number: {node.text!r}") from exc


def _xml_size(tree: ET.Element) -> tuple[int, int] | None:
    """The <size> an annotation tool wrote, when it wrote a usable one."""
    try:
        width, height = int(tree.findtext("size/width") or 0), int(tree.findtext("size/height") or 0)
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def parse_voc(raw: Path, min_box_size: float, report: Report, one_based: bool = True) -> list[ImageRecord]:
    """A user's Pascal VOC folder: ``Annotations/*.xml`` + images (``JPEGImages/`` or beside).

    VOC coordinates are 1-based inclusive pixel indices; qdet's own XML is 0-based inclusive
    (``one_based=False``).
    """
    root = find_root(raw, "Annotations")
    records = []
    spellings: dict[str, str] = {}  # each class name as written -> where it first appears
    for xml_path in sorted((root / "Annotations").glob("*.xml")):
        try:
            tree = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            report.skip(str(xml_path), f"malformed XML ({exc})")
            continue
        name = tree.findtext("filename")
        if not name:
            report.skip(str(xml_path), "no <filename>")
            continue
        candidates = [root / "JPEGImages" / name, root / "images" / name, root / name]
        image = next((c for c in candidates if c.exists()), candidates[0])
        size = image_size(image, report, _xml_size(tree))
        if size is None:
            continue
        w, h = size
        boxes = []
        for i, obj in enumerate(tree.findall("object"), start=1):
            where = f"{xml_path} (object {i})"
            try:
                written = obj.findtext("name") or ""
                cls = written.strip()
                spellings.setdefault(written, where)
                if not cls:
                    raise DataError(f"{where}: object has no <name>")
                coords = [_xml_number(obj, t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
            except DataError as exc:
                report.skip(where, str(exc).split(": ", 1)[1])
                continue
            shift = 1.0 if one_based else 0.0  # inclusive pixel indices -> pixel edges
            box = Box(
                cls,
                coords[0] - shift,
                coords[1] - shift,
                coords[2] + 1 - shift,
                coords[3] + 1 - shift,
            )
            if box.x_max <= box.x_min or box.y_max <= box.y_min:
                report.skip(where, "xmax<=xmin or ymax<=ymin")
                continue
            b = clip_box(box, w, h, min_box_size, where, report)
            if b is not None:
                boxes.append(b)
        records.append(ImageRecord(image, image.name, w, h, boxes))
    report.warnings.extend(similar_class_names({k: v for k, v in spellings.items() if k.strip()}))
    return records
