"""GTSDB facts: its 43 class names, the 4 super-categories the benchmark scored, mirror pairs,
and the official split."""

from __future__ import annotations

from pathlib import Path

CLASS_NAMES: tuple[str, ...] = (
    "speed limit 20",
    "speed limit 30",
    "speed limit 50",
    "speed limit 60",
    "speed limit 70",
    "speed limit 80",
    "end of speed limit 80",
    "speed limit 100",
    "speed limit 120",
    "no passing",
    "no passing for vehicles over 3.5t",
    "right-of-way at next intersection",
    "priority road",
    "yield",
    "stop",
    "no vehicles",
    "vehicles over 3.5t prohibited",
    "no entry",
    "general caution",
    "dangerous curve left",
    "dangerous curve right",
    "double curve",
    "bumpy road",
    "slippery road",
    "road narrows on the right",
    "road work",
    "traffic signals",
    "pedestrians",
    "children crossing",
    "bicycles crossing",
    "beware of ice/snow",
    "wild animals crossing",
    "end of all speed and passing limits",
    "turn right ahead",
    "turn left ahead",
    "ahead only",
    "go straight or right",
    "go straight or left",
    "keep right",
    "keep left",
    "roundabout mandatory",
    "end of no passing",
    "end of no passing by vehicles over 3.5t",
)
NUM_CLASSES = len(CLASS_NAMES)  # 43, ids 0..42

PROHIBITORY = (0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16)
DANGER = (11, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)
MANDATORY = (33, 34, 35, 36, 37, 38, 39, 40)
OTHER = (6, 12, 13, 14, 17, 32, 41, 42)
SUPER_NAMES = ("prohibitory", "danger", "mandatory", "other")

# Horizontal flips turn one of these into the other.
MIRROR_PAIRS = ((19, 20), (33, 34), (36, 37), (38, 39))


def super_category(class_id: int) -> str:
    for name, ids in zip(SUPER_NAMES, (PROHIBITORY, DANGER, MANDATORY, OTHER), strict=True):
        if class_id in ids:
            return name
    raise ValueError(f"GTSDB class id {class_id} outside 0..{NUM_CLASSES - 1}")


def class_name(class_id: int, mode: str) -> str:
    """Name of a raw class id in the chosen class set (``full`` or ``super``)."""
    return CLASS_NAMES[class_id] if mode == "full" else super_category(class_id)


def class_list(mode: str) -> list[str]:
    return list(CLASS_NAMES) if mode == "full" else list(SUPER_NAMES)


def mirrored_names(mode: str) -> dict[str, str]:
    """class name -> its mirror image's name, for flip augmentation (empty for super-categories)."""
    if mode != "full":
        return {}
    pairs = {CLASS_NAMES[a]: CLASS_NAMES[b] for a, b in MIRROR_PAIRS}
    return pairs | {b: a for a, b in pairs.items()}


OFFICIAL_TRAIN_IMAGES = (
    600  # FullIJCNN2013: 00000-00599 are the competition's training set, 00600-00899 its test set
)
OFFICIAL_TEST_NAMES = "00600.ppm to 00899.ppm"


def in_official_test(file_name: str) -> bool:
    """Whether an image of the real archive belongs to the official test set."""
    stem = Path(file_name).stem
    return stem.isdigit() and int(stem) >= OFFICIAL_TRAIN_IMAGES
