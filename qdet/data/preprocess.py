"""Raw dataset folder -> processed common form, by dataset name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qdet.data import gtsdb
from qdet.data.processed import split_by_image, write_processed
from qdet.data.raw import parse_gtsdb, parse_pennfudan, parse_voc
from qdet.data.records import DataError, ImageRecord, Report

DATASETS = ("gtsdb", "pennfudan", "voc")
OFFICIAL_TEST = {"gtsdb": lambda r: gtsdb.in_official_test(r.file_name)}  # published test sets
OFFICIAL_TEST_NAMES = {"gtsdb": gtsdb.OFFICIAL_TEST_NAMES}


def test_rule(
    dataset: str, records: list[ImageRecord], test_fraction: float
) -> tuple[Callable[[ImageRecord], bool] | None, str, str]:
    """(the official test rule or None, the rule's name, why it was chosen): a dataset's published
    test set when any of its images is here (the full archive), else ``data.test_fraction`` of the
    images (a training-only archive such as TrainIJCNN2013.zip, a subset, a look-alike)."""
    official = OFFICIAL_TEST.get(dataset)
    if official is None:
        return None, "by fraction", f"{dataset} has no published test set: data.test_fraction {test_fraction}"
    present = sum(official(r) for r in records)
    if present:
        return (
            official,
            "official",
            (
                f"{present} of the {len(records)} usable images are {dataset}'s official test images "
                f"({OFFICIAL_TEST_NAMES[dataset]})"
            ),
        )
    return (
        None,
        "by fraction",
        (
            f"none of the {len(records)} usable images is one of {dataset}'s official test images "
            f"({OFFICIAL_TEST_NAMES[dataset]}): data.test_fraction {test_fraction} of them instead"
        ),
    )


def parse_raw(
    dataset: str, raw: Path, classes: str, min_box_size: float, report: Report
) -> tuple[list[ImageRecord], list[str]]:
    """-> (records, class names in label order)."""
    if dataset == "gtsdb":
        return parse_gtsdb(raw, classes, min_box_size, report), gtsdb.class_list(classes)
    if dataset == "pennfudan":
        return parse_pennfudan(raw, min_box_size, report), ["person"]
    if dataset == "voc":
        records = parse_voc(raw, min_box_size, report)
        return records, sorted({b.class_name for r in records for b in r.boxes})
    raise DataError(f"dataset: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def preprocess(
    dataset: str,
    raw: Path,
    out: Path,
    classes: str,
    min_box_size: float,
    fractions: tuple[float, float],
    seed: int,
    strict: bool,
) -> dict[str, object]:
    """Parse, split by image (``fractions``: valid and test; the dataset's published test set
    instead of the test fraction where its images are here: :func:`test_rule`), write; return a
    summary with counts, the split rule and why, and every skipped record."""
    report = Report(strict=strict)
    records, class_names = parse_raw(dataset, raw, classes, min_box_size, report)
    if not records:
        raise DataError(f"{raw}: no usable images found for dataset {dataset}")
    official_test, split_rule, why = test_rule(dataset, records, fractions[1])
    splits = split_by_image(records, *fractions, seed, official_test)
    for name, split in splits.items():
        if not any(r.boxes for r in split):
            raise DataError(
                f"{raw}: the {name} split has no image with a box ({len(records)} usable images, "
                f"data.valid_fraction {fractions[0]}, data.test_fraction {fractions[1]}); use more images "
                "or other fractions"
            )
    write_processed(out, splits, class_names)

    def count(rs: list[ImageRecord]) -> dict[str, int]:
        return {
            "images": len(rs),
            "boxes": sum(len(r.boxes) for r in rs),
            "negatives": sum(not r.boxes for r in rs),
        }

    return {
        "dataset": dataset,
        "classes": len(class_names),
        **{name: count(rs) for name, rs in splits.items()},
        "test_split": split_rule,
        "test_split_why": why,
        **report.summary(),
    }
