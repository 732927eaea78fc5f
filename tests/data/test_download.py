import shutil
from pathlib import Path

import pytest

from qdet.data.archives import SourceError
from qdet.data.download import acquire
from tests.helpers import config


def _cfg(dataset, source, md5="auto"):
    return config(
        {
            "dataset": dataset,
            "data": {
                "source": source,
                "md5": md5,
                "synthetic": {
                    "num_images": 3,
                    "width": 128,
                    "height": 96,
                    "min_object": 16,
                    "max_object": 32,
                },
            },
        }
    )


@pytest.mark.parametrize(
    "dataset, marker", [("gtsdb", "FullIJCNN2013/gt.txt"), ("pennfudan", "PennFudanPed/PNGImages")]
)
def test_synthetic_writes_published_layout(tmp_path, dataset, marker):
    result, _ = acquire(_cfg(dataset, "synthetic"), tmp_path / "raw", tmp_path / "dl")
    assert (tmp_path / "raw" / dataset / marker).exists()
    assert result == {"source": "synthetic", "images": 3}


def test_local_archive_is_extracted_and_checked(tmp_path, gtsdb_raw):
    archive = shutil.make_archive(str(tmp_path / "FullIJCNN2013"), "zip", gtsdb_raw)
    result, _ = acquire(_cfg("gtsdb", archive), tmp_path / "out", tmp_path / "dl")
    assert (tmp_path / "out" / "gtsdb" / "FullIJCNN2013" / "gt.txt").exists()
    assert len(result["md5"]) == 32


def test_local_archive_wrong_md5(tmp_path, gtsdb_raw):
    archive = shutil.make_archive(str(tmp_path / "g"), "zip", gtsdb_raw)
    with pytest.raises(SourceError, match="g.zip: wrong checksum"):
        acquire(_cfg("gtsdb", archive, md5="0" * 32), tmp_path / "out", tmp_path / "dl")


def test_archive_of_the_wrong_dataset_is_refused(tmp_path, pennfudan_raw):
    archive = shutil.make_archive(str(tmp_path / "p"), "zip", pennfudan_raw)
    with pytest.raises(SourceError, match="no gt.txt inside; not a gtsdb dataset"):
        acquire(_cfg("gtsdb", archive), tmp_path / "out", tmp_path / "dl")


def test_missing_source_path(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        acquire(_cfg("gtsdb", str(tmp_path / "nope.zip")), tmp_path / "out", tmp_path / "dl")


def test_synthetic_is_deterministic(tmp_path):
    acquire(_cfg("gtsdb", "synthetic"), tmp_path / "a", tmp_path / "dl")
    acquire(_cfg("gtsdb", "synthetic"), tmp_path / "b", tmp_path / "dl")
    for name in ("gt.txt", "00000.ppm", "00002.ppm"):
        a = (tmp_path / "a/gtsdb/FullIJCNN2013" / name).read_bytes()
        assert a == (tmp_path / "b/gtsdb/FullIJCNN2013" / name).read_bytes()


def test_a_local_archive_replaced_at_the_same_path_is_picked_up(tmp_path, gtsdb_raw):
    archive = Path(shutil.make_archive(str(tmp_path / "mine"), "zip", gtsdb_raw))
    cfg, raw, downloads = _cfg("gtsdb", str(archive)), tmp_path / "out", tmp_path / "dl"
    first, fresh = acquire(cfg, raw, downloads)
    assert fresh
    assert acquire(cfg, raw, downloads) == (first, False)  # unchanged: nothing redone
    gt = gtsdb_raw / "FullIJCNN2013" / "gt.txt"
    gt.write_text(gt.read_text().splitlines()[0] + "\n")  # the user's new version of the data
    archive.unlink()
    shutil.make_archive(str(tmp_path / "mine"), "zip", gtsdb_raw)
    second, fresh = acquire(cfg, raw, downloads)
    assert fresh and second["md5"] != first["md5"]
    assert (raw / "gtsdb" / "FullIJCNN2013" / "gt.txt").read_text() == gt.read_text()
