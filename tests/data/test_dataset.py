import torch

from qdet.data.dataset import DetectionDataset, flip_policy
from qdet.data.records import Box, ImageRecord


def _record(tmp_path, boxes):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.new("RGB", (40, 20), (10, 20, 30)).save(path)
    return ImageRecord(path, "img.png", 40, 20, boxes)


def test_targets_match_torchvision_form(tmp_path):
    ds = DetectionDataset([_record(tmp_path, [Box("b", 1, 2, 11, 12)])], ["a", "b"])
    image, target = ds[0]
    assert image.shape == (3, 20, 40) and image.dtype == torch.float32 and image.max() <= 1
    assert target["boxes"].tolist() == [[1, 2, 11, 12]]
    assert target["labels"].tolist() == [2]  # labels start at 1
    assert target["area"].tolist() == [100] and target["iscrowd"].tolist() == [0]


def test_negative_image_has_empty_targets(tmp_path):
    _, target = DetectionDataset([_record(tmp_path, [])], ["a"])[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_flip_mirrors_boxes_and_swaps_mirrored_classes(tmp_path):
    classes = ["keep right", "keep left", "stop"]
    mirror = {"keep right": "keep left", "keep left": "keep right"}
    ds = DetectionDataset(
        [_record(tmp_path, [Box("keep right", 1, 2, 11, 12), Box("stop", 20, 0, 30, 5)])],
        classes,
        hflip=True,
        mirror=mirror,
    )
    torch.manual_seed(0)
    flipped = [t for t in (ds[0][1] for _ in range(20)) if t["boxes"][0, 0] != 1]
    assert flipped, "a flip should happen in 20 draws"
    t = flipped[0]
    assert t["boxes"].tolist() == [[29, 2, 39, 12], [10, 0, 20, 5]]
    assert t["labels"].tolist() == [2, 3]


def test_flip_policy_is_off_for_gtsdb_by_default():
    assert flip_policy("gtsdb", "super", "auto")[0] is False
    assert flip_policy("pennfudan", "super", "auto")[0] is True
    on, mirror = flip_policy("gtsdb", "full", "on")
    assert on and mirror["keep left"] == "keep right"


def test_a_calibration_folder_gives_its_images_by_name_without_boxes(tmp_path):
    from PIL import Image

    from qdet.data.dataset import calibration_set

    (tmp_path / "cam" / "night").mkdir(parents=True)
    for name in ("b.jpg", "a.png", "night/c.ppm"):
        Image.new("RGB", (40, 20), (10, 20, 30)).save(tmp_path / "cam" / name)
    (tmp_path / "cam" / "README.md").write_text("not an image")
    images = calibration_set("folder", tmp_path / "cam", train=None)
    assert [p.name for p in images.paths] == ["a.png", "b.jpg", "c.ppm"]
    image, target = images[0]
    assert image.shape == (3, 20, 40) and target is None


def test_the_train_source_is_the_train_split(tmp_path):
    from qdet.data.dataset import calibration_set

    train = DetectionDataset([_record(tmp_path, [])], ["a"])
    assert calibration_set("train", tmp_path / "absent", train) is train


def test_a_calibration_folder_that_cannot_calibrate_names_itself(tmp_path):
    import pytest

    from qdet.data.dataset import calibration_set
    from qdet.data.records import DataError

    with pytest.raises(DataError, match="calibrate.source: folder: no folder .*absent"):
        calibration_set("folder", tmp_path / "absent", train=None)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("")
    with pytest.raises(DataError, match="empty holds no image"):
        calibration_set("folder", tmp_path / "empty", train=None)
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"not a jpeg")
    images = calibration_set("folder", tmp_path / "empty", train=None)
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        images[0]
