import json

import pytest
import torch

from qdet.data.records import Box, ImageRecord
from qdet.metrics import coco_evaluate, per_class_ap, score

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
