import json

import pytest
import torch

from qdet.data.records import Box, ImageRecord
from qdet.measure.accuracy import coco_evaluate, per_class_ap, score

CLASSES = ["sign", "person"]


def _records():
    return [
        ImageRecord(None, "a.png", 100, 100, [Box("sign", 10, 10, 40, 40), Box("person", 50, 20, 70, 80)]),
        ImageRecord(None, "b.png", 100, 100, [Box("sign", 60, 60, 90, 95)]),
        ImageRecord(None, "c.png", 100, 100, []),
    ]


def _pred(boxes, labels, scores):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores),
    }


def test_perfect_detections_score_one(tmp_path):
    preds = [
        _pred([[10, 10, 40, 40], [50, 20, 70, 80]], [1, 2], [0.9, 0.8]),
        _pred([[60, 60, 90, 95]], [1], [0.7]),
        _pred([], [], []),
    ]
    stats, ev = score(_records(), CLASSES, preds, tmp_path / "gt.json", tmp_path / "dt.json")
    assert stats["map"] == pytest.approx(1.0) and stats["map50"] == pytest.approx(1.0)
    assert per_class_ap(ev, CLASSES)["person"]["ap50"] == pytest.approx(1.0)


def test_wrong_class_and_false_positive_lower_the_score(tmp_path):
    preds = [
        _pred([[10, 10, 40, 40], [50, 20, 70, 80]], [2, 2], [0.9, 0.8]),
        _pred([[60, 60, 90, 95]], [1], [0.7]),
        _pred([[0, 0, 30, 30]], [1], [0.95]),
    ]
    stats, ev = score(_records(), CLASSES, preds, tmp_path / "gt.json", tmp_path / "dt.json")
    assert 0 < stats["map50"] < 1
    assert per_class_ap(ev, CLASSES)["sign"]["ap50"] < 1


def test_no_detections_at_all_scores_zero(tmp_path):
    preds = [_pred([], [], [])] * 3
    stats, _ = score(_records(), CLASSES, preds, tmp_path / "gt.json", tmp_path / "dt.json")
    assert stats["map"] == 0


def test_written_files_rescore_identically(tmp_path):
    preds = [_pred([[11, 9, 41, 40]], [1], [0.9]), _pred([[60, 61, 90, 95]], [1], [0.7]), _pred([], [], [])]
    stats, _ = score(_records(), CLASSES, preds, tmp_path / "gt.json", tmp_path / "dt.json")
    again, _ = coco_evaluate(tmp_path / "gt.json", tmp_path / "dt.json")
    assert again == stats
    assert json.loads((tmp_path / "gt.json").read_text())["categories"][0]["name"] == "sign"


def _scored(tmp_path, preds, name):
    from qdet.measure.accuracy import VariantScore

    stats, ev = score(_records(), CLASSES, preds, tmp_path / "gt.json", tmp_path / f"{name}.json")
    return stats, VariantScore(stats, None, {}, preds, ev)


PERFECT = [
    _pred([[10, 10, 40, 40], [50, 20, 70, 80]], [1, 2], [0.9, 0.8]),
    _pred([[60, 60, 90, 95]], [1], [0.7]),
    _pred([], [], []),
]


def test_resampling_every_image_once_reproduces_the_coco_stats(tmp_path):
    import numpy as np

    from qdet.measure.resampling import resampled_maps

    preds = [_pred([[11, 9, 41, 40]], [1], [0.9]), _pred([[60, 61, 90, 95]], [2], [0.7]), _pred([], [], [])]
    stats, s = _scored(tmp_path, preds, "dt")
    again = resampled_maps(s.evaluation, np.array([[0, 1, 2]]))
    assert again["map"][0] == pytest.approx(stats["map"])
    assert again["map50"][0] == pytest.approx(stats["map50"])
    only_first = resampled_maps(s.evaluation, np.array([[0, 0, 0]]))
    assert only_first["map50"][0] == pytest.approx(0.5)  # image a alone: sign found, person missed


def test_intervals_hold_the_point_and_a_drop_on_one_image_is_not_beyond_noise(tmp_path):
    from qdet.measure.accuracy import add_drops, add_intervals

    worse = [PERFECT[0], _pred([], [], []), PERFECT[2]]  # misses image b's sign
    results, scores = {}, {}
    for name, preds in (("float", PERFECT), ("same", PERFECT), ("worse", worse)):
        results[name], scores[name] = _scored(tmp_path, preds, name)
    add_drops(results)
    add_intervals(results, scores)
    assert results["float"]["map50_ci95"] == pytest.approx([1.0, 1.0])
    assert results["same"]["map50_drop_ci95"] == pytest.approx([0.0, 0.0])
    lo, hi = results["worse"]["map50_drop_ci95"]
    assert lo == pytest.approx(0.0) and hi > 0.2  # resamples without image b lose nothing
    assert results["worse"]["map50_ci95"][0] < results["worse"]["map50_ci95"][1] <= 1.0


def test_identical_imperfect_variants_drop_by_exactly_zero_in_every_resample(tmp_path):
    """Pairing: the same resampled images for both variants, so two identical variants differ by
    0 in every resample, though each one's own interval is wide (images a and b score apart)."""
    from qdet.measure.accuracy import add_drops, add_intervals

    partial = [_pred([[10, 10, 40, 40]], [1], [0.9]), PERFECT[1], PERFECT[2]]  # misses image a's person
    results, scores = {}, {}
    for name, preds in (("float", partial), ("same", partial)):
        results[name], scores[name] = _scored(tmp_path, preds, name)
    add_drops(results)
    add_intervals(results, scores)
    lo, hi = results["float"]["map50_ci95"]
    assert hi - lo > 0.2  # resamples of image a alone score 0.5, of image b alone 1.0
    assert results["same"]["map50_drop_ci95"] == pytest.approx([0.0, 0.0])
    assert results["same"]["map_drop_ci95"] == pytest.approx([0.0, 0.0])
