"""The common in-memory form every raw format is parsed into, and the report of what was skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qdet.core.errors import QdetError


class DataError(QdetError, ValueError):
    """A record that cannot be used; the message names the file (and line)."""


@dataclass
class Box:
    """Pixel-edge coordinates: 0-based, ``x_max``/``y_max`` exclusive (width = x_max - x_min)."""

    class_name: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass
class ImageRecord:
    source: Path  # the image file in the raw dataset
    file_name: str  # name in the processed dataset
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


@dataclass
class Report:
    """What parsing skipped, clipped or doubted, each with its file:line."""

    strict: bool = False
    skipped: list[str] = field(default_factory=list)
    clipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        """Count a bad record, or raise in strict mode."""
        message = f"{where}: {why}"
        if self.strict:
            raise DataError(message + " (data.strict is true)")
        self.skipped.append(message)

    def summary(self) -> dict[str, object]:
        return {
            "skipped_records": len(self.skipped),
            "clipped_boxes": len(self.clipped),
            "warnings": len(self.warnings),
            "skipped": self.skipped,
            "clipped": self.clipped,
            "warning_messages": self.warnings,
        }


def clip_box(box: Box, width: int, height: int, min_size: float, where: str, report: Report) -> Box | None:
    """Clip a box to the image; count the clip; skip it if too small afterwards."""
    clipped = Box(
        box.class_name,
        max(0.0, box.x_min),
        max(0.0, box.y_min),
        min(float(width), box.x_max),
        min(float(height), box.y_max),
    )
    if clipped != box:
        if clipped.x_max - clipped.x_min < min_size or clipped.y_max - clipped.y_min < min_size:
            report.skip(where, f"box {_fmt(box)} lies outside the {width}x{height} image")
            return None
        report.clipped.append(f"{where}: box {_fmt(box)} clipped to the {width}x{height} image")
        return clipped
    if box.x_max - box.x_min < min_size or box.y_max - box.y_min < min_size:
        report.skip(where, f"box {_fmt(box)} is smaller than data.min_box_size={min_size}")
        return None
    return box


def _fmt(b: Box) -> str:
    return f"({b.x_min:g}, {b.y_min:g}, {b.x_max:g}, {b.y_max:g})"


def similar_class_names(seen: dict[str, str]) -> list[str]:
    """Warnings for class names that differ only in case or whitespace (``"Stop"``, ``"stop "``,
    ``"stop  sign"``): each becomes its own class, which is rarely what the annotator meant.
    ``seen``: each name as written -> where it first appears."""
    groups: dict[str, list[str]] = {}
    for name in seen:
        groups.setdefault(" ".join(name.split()).casefold(), []).append(name)
    return [
        "class names differ only in case or spaces and are kept as separate classes: "
        + ", ".join(f"{name!r} ({seen[name]})" for name in sorted(names))
        + "; rename them to one spelling if they are one class"
        for names in groups.values()
        if len(names) > 1
    ]
