import csv
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qdet.data.preprocess import preprocess
from qdet.data.processed import read_split
from qdet.data.raw import parse_gtsdb, parse_pennfudan, parse_voc
from qdet.data.records import DataError, Report


def _gt(raw):
    return raw / "FullIJCNN2013" / "gt.txt"


def test_gtsdb_bad_lines_are_skipped_with_file_and_line(gtsdb_raw):
    gt = _gt(gtsdb_raw)
    good = gt.read_text().splitlines()
    bad = [
        "00000.ppm;1;2;3",  # wrong field count
        "00000.ppm;a;2;30;40;1",  # non-integer
        "00000.ppm;50;2;30;40;1",  # x2 < x1
        "00000.ppm;1;2;30;40;43",  # class id outside 0..42
        "99999.ppm;1;2;30;40;1",  # image missing
    ]
    gt.write_text("\n".join(good + bad) + "\n")
    report = Report()
    records = parse_gtsdb(gtsdb_raw, "super", 2.0, report)
    assert len(report.skipped) == 5
    n = len(good)
    for i, why in enumerate(["expected 6", "non-integer", "right<left", "outside 0..42", "does not exist"]):
        assert f"gt.txt:{n + i + 1}: " in report.skipped[i] and why in report.skipped[i]
    assert sum(len(r.boxes) for r in records) == len(good)


def test_gtsdb_strict_mode_raises_with_line(gtsdb_raw):
    gt = _gt(gtsdb_raw)
    gt.write_text(gt.read_text() + "00000.ppm;x;1;2;3;4\n")
    with pytest.raises(DataError, match=r"gt\.txt:\d+: non-integer"):
        parse_gtsdb(gtsdb_raw, "super", 2.0, Report(strict=True))


def test_gtsdb_crlf_lines_parse_the_same(gtsdb_raw):
    gt = _gt(gtsdb_raw)
    before = parse_gtsdb(gtsdb_raw, "full", 2.0, Report())
    gt.write_bytes(gt.read_bytes().replace(b"\n", b"\r\n"))
    report = Report()
    after = parse_gtsdb(gtsdb_raw, "full", 2.0, report)
    assert report.skipped == []
    assert [r.boxes for r in after] == [r.boxes for r in before]


def test_gtsdb_byte_order_mark_does_not_cost_the_first_record(gtsdb_raw):
    gt = _gt(gtsdb_raw)
    before = parse_gtsdb(gtsdb_raw, "full", 2.0, Report())
    gt.write_bytes(b"\xef\xbb\xbf" + gt.read_bytes())  # what Notepad writes
    report = Report()
    after = parse_gtsdb(gtsdb_raw, "full", 2.0, report)
    assert report.skipped == []
    assert [r.boxes for r in after] == [r.boxes for r in before]


def test_box_outside_image_is_clipped_and_counted(gtsdb_raw):
    gt = _gt(gtsdb_raw)
    gt.write_text("00001.ppm;240;150;270;170;14\n00002.ppm;300;170;320;190;14\n")
    report = Report()
    records = {r.file_name: r for r in parse_gtsdb(gtsdb_raw, "full", 2.0, report)}
    (box,) = records["00001.ppm"].boxes
    assert (box.x_max, box.y_max) == (256, 160)
    assert len(report.clipped) == 1 and "00001.ppm" in report.clipped[0]
    assert len(report.skipped) == 1 and "outside" in report.skipped[0]  # fully outside
    assert records["00002.ppm"].boxes == []


def test_missing_and_corrupt_images_are_skipped(gtsdb_raw):
    root = gtsdb_raw / "FullIJCNN2013"
    (root / "00003.ppm").write_bytes(b"P6\n256 160\n255\n" + b"\x00" * 100)  # truncated
    report = Report()
    names = {r.file_name for r in parse_gtsdb(gtsdb_raw, "super", 2.0, report)}
    assert "00003.ppm" not in names
    assert any("00003.ppm: image cannot be decoded" in s for s in report.skipped)


def test_negatives_are_kept(gtsdb_raw):
    records = parse_gtsdb(gtsdb_raw, "super", 2.0, Report())
    assert len(records) == 12
    assert any(not r.boxes for r in records)


def test_pennfudan_boxes_from_masks_match_text(pennfudan_raw):
    report = Report()
    records = parse_pennfudan(pennfudan_raw, 2.0, report)
    assert len(records) == 6 and report.warnings == [] and report.skipped == []
    assert all(b.class_name == "person" for r in records for b in r.boxes)


def test_pennfudan_mask_annotation_mismatch_is_reported(pennfudan_raw):
    root = pennfudan_raw / "PennFudanPed"
    text = sorted((root / "Annotation").glob("*.txt"))[0]
    lines = text.read_text().splitlines()
    shifted = [
        re.sub(r"\((\d+), (\d+)\)$", lambda m: f"({int(m[1]) + 10}, {m[2]})", ln)
        if ln.startswith("Bounding box for object 1")
        else ln
        for ln in lines
    ]
    assert shifted != lines
    lines = shifted
    text.write_text("\n".join(lines) + "\n")
    mask_path = root / "PedMasks" / f"{text.stem}_mask.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(sorted((root / "PedMasks").glob("*.png"))[1])
    report = Report()
    records = parse_pennfudan(pennfudan_raw, 2.0, report)
    assert any(text.name in w and "differs from its mask box" in w for w in report.warnings)
    assert any("mask is 5x5" in s for s in report.skipped)
    assert len(records) == 5 and mask_path.exists()


def test_processed_csv_and_xml_agree_with_raw_gtsdb(gtsdb_raw, tmp_path):
    out = tmp_path / "processed"
    summary = preprocess("gtsdb", gtsdb_raw, out, "full", 2.0, (0.25, 0.2), 0, False)
    assert [summary[s]["images"] for s in ("train", "valid", "test")] == [7, 3, 2]
    raw_rows = sorted(tuple(line.split(";")) for line in _gt(gtsdb_raw).read_text().split())
    assert _as_raw_rows(out) == raw_rows
    csv_rows = []
    for split in ("train", "valid", "test"):
        with open(out / f"{split}.csv") as f:
            csv_rows += [r for r in csv.DictReader(f) if r["class_name"]]
    for r in csv_rows:
        xml = ET.parse(out / "Annotations" / r["file_name"].replace(".ppm", ".xml")).getroot()
        boxes = [
            tuple(o.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax"))
            for o in xml.findall("object")
        ]
        assert (r["x_min"], r["y_min"], r["x_max"], r["y_max"]) in boxes


def test_split_is_by_image_and_deterministic(gtsdb_raw, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    preprocess("gtsdb", gtsdb_raw, a, "super", 2.0, (0.25, 0.2), 0, False)
    preprocess("gtsdb", gtsdb_raw, b, "super", 2.0, (0.25, 0.2), 0, False)
    for split in ("train", "valid", "test"):
        assert (a / f"{split}.csv").read_text() == (b / f"{split}.csv").read_text()
    train, valid, test = ({r.file_name for r in read_split(a, s)} for s in ("train", "valid", "test"))
    assert train and valid and test and not (train & valid or train & test or valid & test)
    assert len(train | valid | test) == 12


def test_real_gtsdb_keeps_its_official_test_set():
    """FullIJCNN2013: 00600-00899 are the official test images, whatever the fractions; valid
    comes from the official training images only."""
    from qdet.data.preprocess import OFFICIAL_TEST
    from qdet.data.processed import split_by_image
    from qdet.data.records import ImageRecord

    records = [ImageRecord(Path(f"{i:05d}.ppm"), f"{i:05d}.ppm", 10, 10) for i in range(0, 900, 30)]
    splits = split_by_image(records, 0.2, 0.5, 0, OFFICIAL_TEST["gtsdb"])
    assert {r.file_name for r in splits["test"]} == {f"{i:05d}.ppm" for i in range(600, 900, 30)}
    assert len(splits["valid"]) == 6 and all(int(r.file_name[:5]) < 600 for r in splits["valid"])
    by_fraction = split_by_image(records, 0.2, 0.5, 0)
    assert len(by_fraction["test"]) == 15


def _as_raw_rows(out: Path) -> list[tuple[str, ...]]:
    """The processed CSV rows of every split, written back in gt.txt's fields."""
    from qdet.data.gtsdb import CLASS_NAMES

    rows = []
    for split in ("train", "valid", "test"):
        with open(out / f"{split}.csv") as f:
            rows += [
                (
                    r["file_name"],
                    r["x_min"],
                    r["y_min"],
                    r["x_max"],
                    r["y_max"],
                    str(CLASS_NAMES.index(r["class_name"])),
                )
                for r in csv.DictReader(f)
                if r["class_name"]
            ]
    return sorted(rows)


def test_a_gtsdb_archive_without_the_official_test_images_splits_by_fraction(tmp_path):
    """40 images 00000-00039 in a local zip (a subset, or TrainIJCNN2013's layout): no official
    test image is here, so the test split is data.test_fraction of them, box for box, and the
    summary says which rule was used and why."""
    import zipfile

    from qdet.config import SyntheticConfig
    from qdet.data.archives import safe_extract
    from qdet.data.synthetic import write_gtsdb

    write_gtsdb(tmp_path / "made", SyntheticConfig(40, 256, 160, 16, 48, 3, 0.1), seed=3)
    archive = tmp_path / "FullIJCNN2013.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "made").rglob("*")):
            z.write(path, path.relative_to(tmp_path / "made"))
    safe_extract(archive, tmp_path / "raw")
    out = tmp_path / "out"
    summary = preprocess("gtsdb", tmp_path / "raw", out, "full", 2.0, (0.15, 0.2), 0, False)
    assert summary["test_split"] == "by fraction"
    assert "none of the 40 usable images" in summary["test_split_why"]
    assert "data.test_fraction 0.2" in summary["test_split_why"]
    assert [summary[s]["images"] for s in ("train", "valid", "test")] == [26, 6, 8]
    raw_rows = sorted(tuple(line.split(";")) for line in _gt(tmp_path / "raw").read_text().split())
    assert _as_raw_rows(out) == raw_rows


def test_gtsdb_with_official_test_images_keeps_the_official_split(gtsdb_raw, tmp_path):
    """The fixture's last six images renamed into 00606-00611, official test images: they are the
    test split, whatever data.test_fraction; the first six are train and valid; the summary says
    which rule and why."""
    root = gtsdb_raw / "FullIJCNN2013"
    gt = root / "gt.txt"
    lines = gt.read_text().split()
    for image in sorted(root.glob("*.ppm"))[6:]:  # 00006.. -> 00606..
        image.rename(root / f"{int(image.stem) + 600:05d}.ppm")
    renamed = [ln if int(ln[:5]) < 6 else f"{int(ln[:5]) + 600:05d}{ln[5:]}" for ln in lines]
    gt.write_text("\n".join(renamed) + "\n")
    out = tmp_path / "out"
    summary = preprocess("gtsdb", gtsdb_raw, out, "full", 2.0, (0.25, 0.5), 0, False)
    assert summary["test_split"] == "official"
    assert "6 of the 12 usable images" in summary["test_split_why"]
    assert summary["test"]["images"] == 6 and summary["train"]["images"] + summary["valid"]["images"] == 6
    assert _as_raw_rows(out) == sorted(tuple(ln.split(";")) for ln in renamed)


def test_voc_folder_roundtrip(gtsdb_raw, tmp_path):
    out = tmp_path / "processed"
    preprocess("gtsdb", gtsdb_raw, out, "super", 2.0, (0.25, 0.2), 0, False)
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    records = read_split(out, "train")
    for r in records:
        xml = ET.parse(out / "Annotations" / r.file_name.replace(".ppm", ".xml"))
        for node in xml.iter():  # standard VOC is 1-based
            if node.tag in ("xmin", "ymin", "xmax", "ymax"):
                node.text = str(int(node.text) + 1)
        xml.write(voc / "Annotations" / r.file_name.replace(".ppm", ".xml"))
        (voc / "JPEGImages" / r.file_name).write_bytes(r.source.read_bytes())
    back = {r.file_name: r.boxes for r in parse_voc(voc, 2.0, Report())}
    assert back == {r.file_name: r.boxes for r in records}


def test_a_split_left_without_boxes_is_refused_with_the_key(gtsdb_raw, tmp_path):
    from qdet.data.records import DataError

    with pytest.raises(
        DataError, match=r"the train split has no image with a box .*data\.valid_fraction 0\.8"
    ):
        preprocess("gtsdb", gtsdb_raw, tmp_path / "out", "super", 2.0, (0.8, 0.15), 0, False)
    assert not (tmp_path / "out").exists()
