"""The processed form: VOC XML per image + CSV rows + classes.txt, and a split by image.

Coordinates in the CSV and the XML are the same numbers: 0-based inclusive pixel indices, as in
GTSDB's gt.txt (a GTSDB row ``00000.ppm;774;411;815;446;11`` stays 774,411,815,446). The loader
adds 1 to x_max/y_max to get torchvision's pixel-edge boxes.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from qdet.data.records import Box, DataError, ImageRecord

CSV_FIELDS = ["file_name", "width", "height", "class_name", "x_min", "y_min", "x_max", "y_max"]


SPLITS = ("train", "valid", "test")  # train: fitted; valid: watched while training; test: reported


def split_by_image(
    records: list[ImageRecord],
    valid_fraction: float,
    test_fraction: float,
    seed: int,
    official_test: Callable[[ImageRecord], bool] | None = None,
) -> dict[str, list[ImageRecord]]:
    """Train / valid / test, deterministic on a hash of (seed, file name): stable when images are
    added. ``official_test`` (a published split, e.g. GTSDB's) decides the test images instead
    of ``test_fraction``; valid is then drawn from the rest by ``valid_fraction`` of all images."""

    def key(r: ImageRecord) -> str:
        return hashlib.sha1(f"{seed}:{r.file_name}".encode()).hexdigest()

    ordered = sorted(records, key=key)
    if official_test is not None:
        test = [r for r in ordered if official_test(r)]
        ordered = [r for r in ordered if not official_test(r)]
    else:
        n_test = max(1, round(len(records) * test_fraction)) if len(records) > 2 else 0
        test, ordered = ordered[:n_test], ordered[n_test:]
    n_valid = max(1, round(len(records) * valid_fraction)) if len(ordered) > 1 else 0
    splits = {"train": ordered[n_valid:], "valid": ordered[:n_valid], "test": test}
    return {name: sorted(rs, key=lambda r: r.file_name) for name, rs in splits.items()}


def _inclusive(box: Box) -> list[int]:
    return [round(box.x_min), round(box.y_min), round(box.x_max) - 1, round(box.y_max) - 1]


def voc_xml(record: ImageRecord) -> ET.ElementTree:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = record.file_name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for box in record.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.class_name
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), _inclusive(box), strict=True):
            ET.SubElement(bnd, tag).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_processed(out: Path, splits: dict[str, list[ImageRecord]], classes: list[str]) -> None:
    """Write images/, Annotations/*.xml, train.csv, valid.csv, test.csv and classes.txt under ``out``."""
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "Annotations").mkdir()
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    for split, records in splits.items():
        with open(out / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_FIELDS)
            for r in records:
                _link_or_copy(r.source, out / "images" / r.file_name)
                voc_xml(r).write(out / "Annotations" / f"{Path(r.file_name).stem}.xml")
                if not r.boxes:  # a negative image: one row with empty box fields
                    writer.writerow([r.file_name, r.width, r.height, "", "", "", "", ""])
                for b in r.boxes:
                    writer.writerow([r.file_name, r.width, r.height, b.class_name, *_inclusive(b)])


def read_classes(processed: Path) -> list[str]:
    path = processed / "classes.txt"
    if not path.exists():
        raise DataError(f"{path}: missing; run the preprocess stage first")
    return [line for line in path.read_text().splitlines() if line.strip()]


def read_split(processed: Path, split: str) -> list[ImageRecord]:
    """Rows of ``<split>.csv`` grouped by image; boxes back in pixel-edge coordinates."""
    path = processed / f"{split}.csv"
    if not path.exists():
        raise DataError(f"{path}: missing; run the preprocess stage first")
    grouped: dict[str, ImageRecord] = {}
    boxes: dict[str, list[Box]] = defaultdict(list)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != CSV_FIELDS:
            raise DataError(f"{path}: header {reader.fieldnames} is not {CSV_FIELDS}")
        for lineno, row in enumerate(reader, start=2):
            name = row["file_name"]
            try:
                if name not in grouped:
                    grouped[name] = ImageRecord(
                        processed / "images" / name, name, int(row["width"]), int(row["height"])
                    )
                if row["class_name"]:
                    x0, y0, x1, y1 = (float(row[k]) for k in CSV_FIELDS[4:])
                    boxes[name].append(Box(row["class_name"], x0, y0, x1 + 1, y1 + 1))
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}:{lineno}: bad row {row}: {exc}") from exc
    for name, record in grouped.items():
        record.boxes = boxes[name]
    return list(grouped.values())
