"""dvc repro preprocess on the PennFudan look-alike: boxes agree with the raw text, rerun is a no-op."""

import csv

from qdet.data.raw import parse_pennfudan_text
from tests.e2e.repos import make_repo, run, stages_run


def test_pennfudan_preprocess_through_dvc(tmp_path):
    repo = make_repo(tmp_path, {"dataset": "pennfudan", "data": {"synthetic": {"num_images": 8}}})
    done = run(["dvc", "repro", "preprocess"], repo)
    assert stages_run(done.stdout) == ["download", "preprocess"]
    rows = []
    for split in ("train", "valid"):
        with open(repo / "data" / "processed" / f"{split}.csv") as f:
            rows += list(csv.DictReader(f))
    annotations = repo / "data" / "raw" / "pennfudan" / "PennFudanPed" / "Annotation"
    expected = sorted(
        (f"{text.stem}.png", int(b.x_min), int(b.y_min), int(b.x_max) - 1, int(b.y_max) - 1)
        for text in annotations.glob("*.txt")
        for b in parse_pennfudan_text(text).values()
    )
    got = sorted(
        (r["file_name"], int(r["x_min"]), int(r["y_min"]), int(r["x_max"]), int(r["y_max"])) for r in rows
    )
    assert got == expected and {r["class_name"] for r in rows} == {"person"}
    assert (repo / "data" / "processed" / "classes.txt").read_text() == "person\n"
    assert stages_run(run(["dvc", "repro", "preprocess"], repo).stdout) == []
