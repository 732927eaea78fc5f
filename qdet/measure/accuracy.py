"""COCO evaluation with pycocotools: overall and per-class AP, PR curves, COCO JSON files.

Ground truth and detections are written as COCO JSON so any COCO tool can re-score them.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.progress import Progress
from torch import nn

from qdet.core.aside import Aside
from qdet.core.device import model_device
from qdet.core.files import write_atomically, write_json
from qdet.data.records import ImageRecord
from qdet.measure.resampling import resampled_maps
from qdet.measure.stats import interval, resample
from qdet.variants.table import CONTROL, RECOMMENDED

STAT_NAMES = ["map", "map50", "map75", "map_small", "map_medium", "map_large"]


def coco_ground_truth(records: list[ImageRecord], classes: list[str]) -> dict[str, Any]:
    """COCO dict; boxes as [x, y, w, h] in pixel edges, image ids = index in ``records``."""
    index = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for i, r in enumerate(records):
        images.append({"id": i, "file_name": r.file_name, "width": r.width, "height": r.height})
        for b in r.boxes:
            w, h = b.x_max - b.x_min, b.y_max - b.y_min
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": index[b.class_name],
                    "bbox": [b.x_min, b.y_min, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_detections(predictions: list[dict[str, torch.Tensor]]) -> list[dict[str, Any]]:
    out = []
    for image_id, p in enumerate(predictions):
        for box, label, score in zip(
            p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), strict=True
        ):
            x0, y0, x1, y1 = box
            out.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    return out


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def coco_evaluate(gt_json: Path, det_json: Path) -> tuple[dict[str, float], COCOeval]:
    """Score a COCO detection file against a COCO ground-truth file (what any tool would do)."""
    gt = _quiet(COCO, str(gt_json))
    dets = json.loads(det_json.read_text())
    if dets:
        dt = _quiet(gt.loadRes, str(det_json))
    else:  # pycocotools cannot load an empty result list: nothing detected scores 0
        dt = COCO()
        dt.dataset = {
            "images": gt.dataset["images"],
            "categories": gt.dataset["categories"],
            "annotations": [],
        }
        _quiet(dt.createIndex)
    ev = COCOeval(gt, dt, "bbox")
    ev.params.imgIds = sorted(gt.getImgIds())
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    stats = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats[:6], strict=True)}
    return stats, ev


def per_class_ap(ev: COCOeval, classes: list[str]) -> dict[str, dict[str, float]]:
    """AP@[.5:.95] and AP@.5 per class (-1 where the class has no ground truth)."""
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        out[classes[cat_id - 1]] = {
            "ap": float(np.mean(p[p > -1])) if (p > -1).any() else -1.0,
            "ap50": float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else -1.0,
        }
    return out


def pr_curve(ev: COCOeval) -> tuple[np.ndarray, np.ndarray]:
    """Recall thresholds and precision at IoU .5, averaged over classes that have ground truth."""
    p = ev.eval["precision"][0, :, :, 0, -1]  # [R, K]
    valid = (p > -1).all(axis=0)
    mean = p[:, valid].mean(axis=1) if valid.any() else np.zeros(p.shape[0])
    return np.asarray(ev.params.recThrs), mean


def score(
    records: list[ImageRecord],
    classes: list[str],
    predictions: list[dict[str, torch.Tensor]],
    gt_json: Path,
    det_json: Path,
) -> tuple[dict[str, float], COCOeval]:
    """Write ground truth and detections as COCO JSON, then score the files."""
    write_json(coco_ground_truth(records, classes), gt_json)
    write_json(coco_detections(predictions), det_json)
    return coco_evaluate(gt_json, det_json)


@dataclass
class VariantScore:
    """One detector scored on a dataset: COCO stats, the PR curve, per-class AP, detections."""

    stats: dict[str, float]
    curve: tuple[np.ndarray, np.ndarray]
    per_class: dict[str, dict[str, float]]
    predictions: list[dict[str, torch.Tensor]]
    evaluation: COCOeval  # per-image matches, for resampling the images


def evaluate_detector(
    detector: Callable, dataset, out_dir: Path, variant: str, progress: Progress | None = None
) -> VariantScore:
    """Predict every image of ``dataset`` and score it; COCO JSON files go to ``out_dir``."""
    predictions = predict_dataset(detector, dataset, progress, f"evaluate {variant}")
    stats, ev = score(
        dataset.records,
        dataset.classes,
        predictions,
        out_dir / "coco_gt.json",
        out_dir / f"detections_{variant}.json",
    )
    return VariantScore(stats, pr_curve(ev), per_class_ap(ev, dataset.classes), predictions, ev)


def add_drops(results: dict[str, dict[str, float]], baseline: str = "float") -> None:
    """``map_drop`` / ``map50_drop`` (baseline minus variant) on every other variant, in place."""
    for variant, stats in results.items():
        if variant != baseline:
            for key in ("map", "map50"):
                stats[f"{key}_drop"] = results[baseline][key] - stats[key]


def map50_with_interval(
    detector: Callable, dataset, out_dir: Path, name: str, progress: Progress | None = None
) -> tuple[float, list[float]]:
    """mAP@.5 of ``detector`` on ``dataset`` and its 95% bootstrap interval over the images."""
    s = evaluate_detector(detector, dataset, out_dir, name, progress)
    boot = resampled_maps(s.evaluation, resample(len(s.evaluation._paramsEval.imgIds)))
    return s.stats["map50"], interval(boot["map50"], s.stats["map50"])


def add_intervals(
    results: dict[str, dict],
    scores: dict[str, VariantScore],
    baseline: str = "float",
    control: str = CONTROL,
) -> None:
    """``map_ci95``/``map50_ci95`` on every variant and ``map_drop_ci95``/``map50_drop_ci95`` on
    the others, in place: 95% bootstrap over the test images, the drop paired (the same
    resampled images for both variants). With the QAT control scored, QAT also gets
    ``map50_vs_float_ft`` (QAT minus the control) and its interval. Needs :func:`add_drops` first."""
    rows = resample(len(scores[baseline].evaluation._paramsEval.imgIds))
    names = list(scores)
    beside = names[: len(names) // 2]  # half the variants in a forked child, on the other core

    def resampled(variants: list[str]) -> dict[str, dict[str, np.ndarray]]:
        return {variant: resampled_maps(scores[variant].evaluation, rows) for variant in variants}

    half = Aside(lambda: resampled(beside), "bootstrap over the test images") if beside else None
    boot = resampled(names[len(beside) :])
    if half is not None:
        boot |= half.result()
    for variant, stats in results.items():
        for key in ("map", "map50"):
            stats[f"{key}_ci95"] = interval(boot[variant][key], stats[key])
            if variant != baseline:
                drops = boot[baseline][key] - boot[variant][key]
                stats[f"{key}_drop_ci95"] = interval(drops, stats[f"{key}_drop"])
    qat = RECOMMENDED  # the variant the control is the control of
    if control in results and qat in results:
        for key in ("map", "map50"):
            gain = results[qat][key] - results[control][key]
            results[qat][f"{key}_vs_{control}"] = gain
            results[qat][f"{key}_vs_{control}_ci95"] = interval(boot[qat][key] - boot[control][key], gain)


def map_summary(stats: dict) -> str:
    """One console line: mAP@.5 and mAP with their intervals, and the drop when there is one."""

    def ci(key: str) -> str:
        lo, hi = stats[f"{key}_ci95"]
        return f"[{lo:.3f}, {hi:.3f}]"

    line = f"mAP@.5 {stats['map50']:.3f} {ci('map50')}  mAP {stats['map']:.3f} {ci('map')}"
    if "map50_drop" in stats:
        lo, hi = stats["map50_drop_ci95"]
        verdict = "beyond noise" if lo > 0 or hi < 0 else "within noise"
        line += f"  drop@.5 {stats['map50_drop']:+.3f} [{lo:+.3f}, {hi:+.3f}] {verdict}"
    if f"map50_vs_{CONTROL}" in stats:
        lo, hi = stats[f"map50_vs_{CONTROL}_ci95"]
        line += f"  vs control {stats[f'map50_vs_{CONTROL}']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return line


def per_class_csv(scores: dict[str, VariantScore], path: Path) -> None:
    rows = ["variant,class,ap,ap50"]
    for variant, s in scores.items():
        rows += [f"{variant},{c},{v['ap']:.4f},{v['ap50']:.4f}" for c, v in s.per_class.items()]
    text = "\n".join(rows) + "\n"
    write_atomically(path, lambda partial: partial.write_text(text))


Detector = Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]]


@torch.inference_mode()
def predict_dataset(
    detector: Detector, dataset, progress: Progress | None = None, label: str = "predict"
) -> list[dict[str, torch.Tensor]]:
    """Detections for every image of ``dataset`` (eager model in eval mode or TorchScript)."""
    if isinstance(detector, nn.Module):
        detector.eval()
    out = []
    device = model_device(detector) if isinstance(detector, nn.Module) else torch.device("cpu")
    task = progress.add_task(label, total=len(dataset), info="") if progress else None
    for i in range(len(dataset)):
        image, _ = dataset[i]
        out.append({k: v.detach().cpu() for k, v in detector([image.to(device)])[0].items()})
        if progress is not None and task is not None:
            progress.update(task, advance=1)
    return out
