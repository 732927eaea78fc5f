"""Resampled mAP: pycocotools' accumulate arithmetic, vectorised, equal to pycocotools itself."""

import copy

import numpy as np

from qdet.data.records import Box, ImageRecord
from qdet.measure.accuracy import _quiet, score
from qdet.measure.resampling import resampled_maps
from qdet.measure.stats import resample
from tests.measure.test_metrics import CLASSES, _pred


def _accumulated_maps(ev, rows):
    """The oracle: pycocotools' own ``accumulate`` on each resample of the per-image matches."""
    images, areas = len(ev._paramsEval.imgIds), len(ev._paramsEval.areaRng)
    out = {"map": [], "map50": []}
    for row in rows:
        boot, params = copy.copy(ev), copy.copy(ev.params)
        params.imgIds = list(range(len(row)))
        params.areaRng, params.areaRngLbl, params.maxDets = params.areaRng[:1], ["all"], params.maxDets[-1:]
        boot.params, boot._paramsEval = params, copy.copy(params)
        boot.evalImgs = [ev.evalImgs[k * areas * images + i] for k in range(len(params.catIds)) for i in row]
        _quiet(boot.accumulate)
        p = boot.eval["precision"][:, :, :, 0, 0]
        for key, q in (("map", p), ("map50", p[0])):
            out[key].append(q[q > -1].mean() if (q > -1).any() else np.nan)
    return out


def test_resampled_maps_equal_pycocotools_accumulate_on_every_resample(tmp_path):
    """Random images, misses, false alarms and tied scores: every resample's mAP and mAP@.5,
    exactly as pycocotools accumulates them (ties broken in the same order)."""
    rng = np.random.default_rng(1)
    records, preds = [], []
    for i in range(14):
        boxes = []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 60, 2)
            w, h = rng.uniform(8, 40, 2)
            boxes.append(Box(CLASSES[rng.integers(0, 2)], x, y, x + w, y + h))
        records.append(ImageRecord(None, f"{i}.png", 100, 100, boxes))
        found = [b for b in boxes if rng.uniform() < 0.8]
        kept = [[b.x_min + rng.normal(0, 3), b.y_min, b.x_max, b.y_max + rng.normal(0, 3)] for b in found]
        alarms = [[x, y, x + 20, y + 20] for x, y in rng.uniform(0, 70, (rng.integers(0, 3), 2))]
        labels = [CLASSES.index(b.class_name) + 1 for b in found] + list(rng.integers(1, 3, len(alarms)))
        scores = np.round(rng.uniform(0.05, 1, len(kept) + len(alarms)), 1)  # rounded: many ties
        preds.append(_pred(kept + alarms, labels, list(scores)))
    _, ev = score(records, CLASSES, preds, tmp_path / "gt.json", tmp_path / "dt.json")
    rows = resample(len(records), samples=300, seed=3)
    ours, oracle = resampled_maps(ev, rows), _accumulated_maps(ev, rows)
    for key in ("map", "map50"):
        np.testing.assert_array_equal(ours[key], np.array(oracle[key]))
    assert np.nanstd(ours["map50"]) > 0.01  # the resamples differ: the check is not of a constant
