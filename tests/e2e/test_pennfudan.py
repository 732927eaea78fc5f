"""dvc repro preprocess on the PennFudan look-alike: boxes agree with the raw text, rerun is a no-op."""

import csv
from pathlib import Path

from qdet.data.raw import parse_pennfudan_text
from tests.e2e.repos import make_repo, run, stages_run


def test_pennfudan_preprocess_through_dvc(tmp_path):
    repo = make_repo(tmp_path, {"dataset": "pennfudan", "data": {"synthetic": {"num_images": 8}}})
    done = run(["dvc", "repro", "preprocess"], repo)
    assert stages_run(done.stdout) == ["download", "preprocess"]
    rows = []
    for split in ("train", "valid", "test"):
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
    assert stages_run(run(["dvc", "repro", "preprocess"], repo).stdout) == ["download"]


def test_a_local_archive_replaced_at_the_same_path_reruns_download_and_after(tmp_path):
    import json
    import shutil

    from qdet.config import SyntheticConfig
    from qdet.data.synthetic import write_pennfudan

    def archive(images: int) -> Path:
        folder = tmp_path / f"made{images}"
        write_pennfudan(folder, SyntheticConfig(images, 256, 200, 16, 48, 2, 0.0), seed=images)
        return Path(shutil.make_archive(str(tmp_path / "mydata"), "zip", folder))

    source = archive(6)
    repo = make_repo(tmp_path / "repo", {"dataset": "pennfudan", "data": {"source": str(source)}})
    assert stages_run(run(["dvc", "repro", "preprocess"], repo).stdout) == ["download", "preprocess"]
    source.unlink()
    archive(9)  # the user's new version of the data, at the same path
    assert "download" in run(["dvc", "status"], repo).stdout
    assert stages_run(run(["dvc", "repro", "preprocess"], repo).stdout) == ["download", "preprocess"]
    summary = json.loads((repo / "metrics" / "preprocess.json").read_text())
    assert sum(summary[split]["images"] for split in ("train", "valid", "test")) == 9
    assert summary["test_split"] == "by fraction"  # PennFudan publishes no split
