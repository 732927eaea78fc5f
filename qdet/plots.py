"""PNG plots: training curves, PR curves, detection grids, sensitivity bars, mAP vs latency.
PNG rather than DVC's HTML plots, which load their chart library from a CDN and stay blank offline."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def write_history_csv(history: list[dict[str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)


def training_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"):
        if key in history[0]:
            a.plot(epochs, [r[key] for r in history], marker="o", label=key)
    a.set_xlabel("epoch"), a.set_title("training loss"), a.legend(fontsize=7)
    for key in ("val_map50", "val_map"):
        b.plot(epochs, [r[key] for r in history], marker="o", label=key)
    b.set_xlabel("epoch"), b.set_ylim(0, 1), b.set_title("validation mAP"), b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("PR curve at IoU 0.5")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_detections(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: list[str],
    scores: torch.Tensor | None,
    truth: torch.Tensor | None = None,
) -> Image.Image:
    """Predictions in orange with 'class score', ground truth (if given) in green."""
    img = Image.fromarray((image.permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy())
    draw = ImageDraw.Draw(img)
    if truth is not None:
        for box in truth.tolist():
            draw.rectangle(box, outline=(0, 230, 0), width=2)
    for i, box in enumerate(boxes.tolist()):
        draw.rectangle(box, outline=(255, 140, 0), width=2)
        text = labels[i] + (f" {float(scores[i]):.2f}" if scores is not None else "")
        draw.text((box[0] + 2, max(box[1] - 11, 0)), text, fill=(255, 140, 0))
    return img


def grid(images: list[Image.Image], path: Path, columns: int = 4) -> None:
    if not images:
        return
    w, h = max(i.width for i in images), max(i.height for i in images)
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (w * min(columns, len(images)), h * rows), (30, 30, 30))
    for k, im in enumerate(images):
        canvas.paste(im, ((k % columns) * w, (k // columns) * h))
    canvas.save(path)


def bars(values: dict[str, float], path: Path, xlabel: str, title: str) -> None:
    names = list(values)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(names) + 1.2))
    ax.barh(range(len(names)), [values[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel), ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def map_vs_latency(points: dict[str, tuple[float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (latency, map50) in points.items():
        ax.scatter(latency, map50, s=60)
        ax.annotate(name, (latency, map50), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("latency p50 (ms)"), ax.set_ylabel("mAP@.5"), ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def detection_grid(
    dataset,
    predictions: list[dict[str, torch.Tensor]],
    classes: list[str],
    count: int,
    threshold: float,
    path: Path,
) -> None:
    """The first ``count`` images with predictions above ``threshold`` and the true boxes."""
    shown = []
    for i, p in enumerate(predictions[:count]):
        keep = p["scores"] >= threshold
        names = [classes[int(k) - 1] for k in p["labels"][keep]]
        shown.append(
            draw_detections(
                dataset[i][0],
                p["boxes"][keep],
                names,
                p["scores"][keep],
                dataset.target(i)["boxes"],
            )
        )
    grid(shown, path)
