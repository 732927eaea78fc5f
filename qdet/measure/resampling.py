"""mAP and mAP@.5 of a COCO evaluation in resamples of its images, for the bootstrap intervals
of :func:`qdet.measure.accuracy.add_intervals`: pycocotools' ``accumulate`` arithmetic on the
per-image matches its ``evaluate()`` made once, vectorised per resample (equal to pycocotools'
own loop on every resample: tests/test_resampling.py holds it as the oracle)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pycocotools.cocoeval import COCOeval


class _CategoryMatches(NamedTuple):
    """One category's per-image matches from ``COCOeval.evaluate`` (all areas, the last maxDets),
    laid end to end in image order: what ``accumulate`` concatenates for a set of images (an
    image without an entry adds no detection and no ground truth)."""

    scores: np.ndarray  # [N] detection scores
    tps: np.ndarray  # [T, N] matched and not ignored
    fps: np.ndarray  # [T, N] unmatched and not ignored
    starts: np.ndarray  # [I] where each image's detections begin
    counts: np.ndarray  # [I] detections per image
    ground_truth: np.ndarray  # [I] ground truth boxes that count (not ignored) per image


def _category_matches(ev: COCOeval, k: int) -> _CategoryMatches:
    images, areas = len(ev._paramsEval.imgIds), len(ev._paramsEval.areaRng)
    max_det, thresholds = ev.params.maxDets[-1], len(ev.params.iouThrs)
    entries = [ev.evalImgs[k * areas * images + i] for i in range(images)]
    counts = np.array([0 if e is None else len(e["dtScores"][:max_det]) for e in entries], dtype=np.int64)
    kept = [e for e in entries if e is not None]
    none = np.zeros((thresholds, 0))
    matched = np.concatenate([none, *(e["dtMatches"][:, :max_det] for e in kept)], axis=1)
    ignored = np.concatenate([none, *(e["dtIgnore"][:, :max_det] for e in kept)], axis=1)
    return _CategoryMatches(
        scores=np.concatenate(
            [np.zeros(0), *(np.asarray(e["dtScores"][:max_det], dtype=float) for e in kept)]
        ),
        tps=np.logical_and(matched, np.logical_not(ignored)),
        fps=np.logical_and(np.logical_not(matched), np.logical_not(ignored)),
        starts=np.concatenate([[0], np.cumsum(counts)[:-1]]),
        counts=counts,
        ground_truth=np.array([0 if e is None else np.count_nonzero(e["gtIgnore"] == 0) for e in entries]),
    )


def _precision(cat: _CategoryMatches, row: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray | None:
    """[T, R] interpolated precision of one category over the images in ``row`` (repeats count
    again), as ``COCOeval.accumulate`` computes it: the detections concatenated in the row's
    order, sorted by score (mergesort: ties keep that order), the precision envelope read at
    each recall threshold; None where the row holds no ground truth of the category."""
    gt = int(cat.ground_truth[row].sum())
    if gt == 0:
        return None
    counts = cat.counts[row]
    total = int(counts.sum())
    precision = np.zeros((cat.tps.shape[0], len(rec_thrs)))
    if total == 0:
        return precision
    # positions of the row's detections: each image's run, one after the other
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    picked = np.repeat(cat.starts[row], counts) + within
    order = picked[np.argsort(-cat.scores[picked], kind="mergesort")]
    tp = np.cumsum(cat.tps[:, order], axis=1).astype(float)
    fp = np.cumsum(cat.fps[:, order], axis=1).astype(float)
    recall = tp / gt
    envelope = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[:, ::-1], axis=1)[:, ::-1]
    for t in range(len(recall)):
        at = np.searchsorted(recall[t], rec_thrs, side="left")
        reached = at < total
        precision[t, reached] = envelope[t, at[reached]]
    return precision


def resampled_maps(ev: COCOeval, rows: np.ndarray) -> dict[str, np.ndarray]:
    """mAP and mAP@.5 of an evaluated COCOeval in each resample of its images (``rows`` of image
    positions, from :func:`qdet.measure.stats.resample`): ``accumulate``'s arithmetic (all
    areas, 100 detections) on the per-image matches of ``evaluate()``, vectorised over each
    resample's detections (pycocotools' own loop takes 2.9 ms a resample: 2,000 resamples of 11
    variants were ~45 s of the evaluate stage; tests check equality with it)."""
    categories = [_category_matches(ev, k) for k in range(len(ev._paramsEval.catIds))]
    rec_thrs = np.asarray(ev.params.recThrs)
    out = {"map": np.empty(len(rows)), "map50": np.empty(len(rows))}
    for s, row in enumerate(rows):
        found = [p for cat in categories if (p := _precision(cat, np.asarray(row), rec_thrs)) is not None]
        if not found:  # no ground truth drawn
            out["map"][s] = out["map50"][s] = np.nan
            continue
        stacked = np.stack(found, axis=-1)  # [T, R, K]: accumulate's layout, so its order of sums
        out["map"][s], out["map50"][s] = stacked.mean(), stacked[0].mean()
    return out
