"""PNG plots: training curves, PR curves, detection grids, sensitivity bars, mAP vs latency.
PNG rather than DVC's HTML plots, which load their chart library from a CDN and stay blank offline."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from qdet.core.files import write_atomically  # noqa: E402


def write_history_csv(history: list[dict[str, float]], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in history for k, v in row.items() if not isinstance(v, list)))

    def write(partial: Path) -> None:
        with open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, keys, extrasaction="ignore")  # per-iteration lists: MLflow, plot
            writer.writeheader()
            writer.writerows(history)

    write_atomically(path, write)


def save_figure(fig, path: Path, dpi: int) -> None:
    """A matplotlib figure as PNG, written atomically, then closed."""
    write_atomically(path, lambda partial: fig.savefig(partial, dpi=dpi, format="png"))


def training_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss per iteration (thin) and per epoch (mean, dots) on a fractional-epoch axis, and the
    validation mAP per epoch: reads the same with 1 epoch as with 100."""
    epochs = [r["epoch"] for r in history]
    marker = "o" if len(epochs) <= 30 else None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    start = 0.0
    for row in history:
        losses = row.get("loss_iter") or []
        if losses:
            x = start + (np.arange(len(losses)) + 1) / len(losses)
            a.plot(x, losses, color="tab:blue", alpha=0.35, linewidth=0.8)
        start = row["epoch"]
    a.plot([], [], color="tab:blue", alpha=0.35, label="loss per iteration")
    middles = [e - 0.5 for e in epochs]  # a mean belongs to the middle of the epoch it averages
    parts = ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for key, colour in zip(parts, colours, strict=True):
        if key in history[0]:
            width = 2 if key == "loss" else 1
            label = "loss, epoch mean" if key == "loss" else f"{key}, epoch mean"
            values = [r[key] for r in history]
            a.plot(middles, values, marker=marker, label=label, color=colour, linewidth=width)
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.set_title("training loss")
    a.set_xlim(0, max(epochs)), a.set_ylim(bottom=0)
    a.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    for key, label in (("val_map50", "mAP@.5"), ("val_map", "mAP@[.5:.95]")):
        b.plot(epochs, [r[key] for r in history], marker=marker, label=label)
    b.set_xlabel("epoch"), b.set_ylim(0, 1), b.set_xlim(0, max(epochs) + 0.5)
    b.set_title("validation mAP (after each epoch)")
    b.legend(fontsize=8, loc="lower right")
    for axis in (a, b):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("PR curve at IoU 0.5")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


PREDICTED = (255, 140, 0)
TRUTH = (0, 200, 0)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour, font) -> None:
    """Text on a filled box of the box's colour: readable on sky, road or another label."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=colour)
    draw.text(xy, text, fill=(0, 0, 0), font=font)


def draw_detections(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: list[str],
    scores: torch.Tensor | None,
    truth: torch.Tensor | None = None,
) -> Image.Image:
    """Predictions in orange with 'class score' on a filled tag, ground truth (if given) in
    green, and a legend strip on top; text scales with the image (min 12 px)."""
    img = Image.fromarray((image.permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy())
    size = max(12, round(min(img.size) / 40))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(img)
    width = max(2, size // 6)
    if truth is not None:
        for box in truth.tolist():
            draw.rectangle(box, outline=TRUTH, width=width)
    order = sorted(range(len(labels)), key=lambda i: float(scores[i]) if scores is not None else 0.0)
    for i in order:  # the most confident last, so its tag is on top where tags overlap
        box = boxes[i].tolist()
        draw.rectangle(box, outline=PREDICTED, width=width)
        text = labels[i] + (f" {float(scores[i]):.2f}" if scores is not None else "")
        _label(draw, (box[0] + 1, max(box[1] - size - 3, 0)), text, PREDICTED, font)
    x = 4
    for text, colour in (("prediction (class score)", PREDICTED), ("ground truth", TRUTH)):
        if colour == TRUTH and truth is None:
            break
        _label(draw, (x, 3), text, colour, font)
        x = draw.textbbox((x, 3), text, font=font)[2] + 12
    return img


def grid(images: list[Image.Image], path: Path, columns: int = 4) -> None:
    if not images:
        return
    w, h = max(i.width for i in images), max(i.height for i in images)
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (w * min(columns, len(images)), h * rows), (30, 30, 30))
    for k, im in enumerate(images):
        canvas.paste(im, ((k % columns) * w, (k // columns) * h))
    write_atomically(path, lambda partial: canvas.save(partial, format="PNG"))


def bars(values: dict[str, float], path: Path, xlabel: str, title: str) -> None:
    names = list(values)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(names) + 1.2))
    ax.barh(range(len(names)), [values[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel), ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def map_vs_latency(rows: dict[str, dict], path: Path) -> None:
    """Each benchmark variant at (p50 latency, mAP@.5) with both 95% intervals as error bars;
    names and figures in the legend (labels beside the points overlap when latencies are
    close); the mAP axis spans at least 0.2 so noise-sized differences look noise-sized."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = "osD^vP*Xh"
    ordered = sorted(rows.items(), key=lambda item: item[1]["latency_ms_p50"])
    for i, (name, r) in enumerate(ordered):
        x, y = r["latency_ms_p50"], r["map50"]
        (xlo, xhi), (ylo, yhi) = r.get("latency_ms_p50_ci95", [x, x]), r.get("map50_ci95", [y, y])
        ax.errorbar(
            x,
            y,
            xerr=[[x - xlo], [xhi - x]],
            yerr=[[y - ylo], [yhi - y]],
            fmt=markers[i % len(markers)],
            markersize=8,
            capsize=3,
            label=f"{name}: {x:.1f} ms, mAP@.5 {y:.3f}",
        )
    lows = [r.get("map50_ci95", [r["map50"]] * 2)[0] for r in rows.values()]
    highs = [r.get("map50_ci95", [r["map50"]] * 2)[1] for r in rows.values()]
    middle = (min(lows) + max(highs)) / 2
    half = max(0.1, (max(highs) - min(lows)) / 2 + 0.03)
    ax.set_ylim(max(0.0, middle - half), min(1.0, middle + half))
    ax.set_xlim(left=0)
    ax.set_xlabel("latency p50 (ms), 95% interval over rounds")
    ax.set_ylabel("mAP@.5, 95% interval over images")
    ax.set_title("accuracy vs latency (up and left is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
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


def plot_sensitivity(sqnr: dict[str, float], path: Path, most: int = 40) -> None:
    """Bars of the ``most`` worst modules (SQNR, dB), worst on top."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bars(
        dict(list(sqnr.items())[:most]),
        path,
        "SQNR (dB), higher is better",
        f"int8 vs float, per quantized module: the {min(most, len(sqnr))} worst of {len(sqnr)}"
        + ("" if len(sqnr) <= most else "\n(every module in metrics/sensitivity.csv)"),
    )


def search_plot(record: dict | None, path: Path) -> None:
    """The accuracy search step by step: valid mAP@.5 (95% interval) against the plan's kernel
    time, the float model and the budget line, the chosen plan starred. ``None``: search off."""
    if record is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.text(0.5, 0.5, "quant.search: off\nPTQ went to convert as calibrated", ha="center", va="center")
        ax.set_axis_off()
        save_figure(fig, path, 100)
        return
    fig, (ax, notes) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [5, 3]})
    steps = record["steps"]
    x = [s["latency_ms"] for s in steps]
    y = [s["map50"] for s in steps]
    err = np.array([[s["map50"] - s["map50_ci95"][0], s["map50_ci95"][1] - s["map50"]] for s in steps]).T
    err = err.clip(min=0)  # stats.interval holds its point; a hand-made record might not
    ax.errorbar(x, y, yerr=err, fmt="o", color="tab:blue", capsize=3, label="plan (valid mAP@.5, 95% CI)")
    for i in range(len(steps)):  # numbers here, what each kept float in the panel beside
        ax.annotate(str(i), (x[i], y[i]), fontsize=8, xytext=(5, 3), textcoords="offset points")
    chosen = steps[record["chosen"]]
    ax.plot(chosen["latency_ms"], chosen["map50"], "*", color="tab:red", markersize=16, label="chosen plan")
    ax.axhline(record["reference_map50"], color="black", linestyle=":", label="float")
    budget = record["reference_map50"] - record["max_drop"]
    ax.axhline(budget, color="tab:red", linestyle="--", label=f"budget (drop ≤ {record['max_drop']:g})")
    ax.set_xlabel("quantized modules' kernel time at best-case rates (ms, est.)")
    ax.set_ylabel("valid mAP@.5")
    mark = ["*" if i == record["chosen"] else " " for i in range(len(steps))]
    kept = [", ".join(s["kept_float"]) or "nothing (PTQ as planned)" for s in steps]
    lines = [
        textwrap.fill(f"{i}{mark[i]}   {s['map50']:.3f}  {kept[i]}", 62, subsequent_indent=" " * 15)
        for i, s in enumerate(steps)
    ]
    text = "step  mAP@.5  kept float (* chosen)\n" + "\n".join(lines)
    notes.text(0, 1, text, va="top", family="monospace", fontsize=7)
    notes.set_axis_off()
    ax.set_title("Accuracy to a budget: " + ("met" if record["met"] else "missed, cheapest near-best plan"))
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    save_figure(fig, path, 100)


def seed_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Valid mAP@.5 and mAP@.5:.95 per epoch of each seed's float training, a colour per
    precision: whether the recipe reaches the same plateau whatever the seed and the arithmetic."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    colours = {"bf16": "tab:orange", "fp32": "tab:blue"}
    styles = ("-", "--", ":", "-.")  # a line style per seed, the same in both precisions
    seeds = sorted({row["seed"] for row in rows})
    for row in rows:
        colour = colours.get(str(row.get("precision")), "tab:gray")
        style = styles[seeds.index(row["seed"]) % len(styles)]
        label = f"{row.get('precision', '?')}, seed {row['seed']}"
        for axis, key in zip(axes, ("val_map50_per_epoch", "val_map_per_epoch"), strict=True):
            values = row.get(key) or []
            epochs = range(1, len(values) + 1)
            axis.plot(epochs, values, style, marker="o", markersize=3, color=colour, label=label)
    for axis, title in zip(axes, ("valid mAP@.5", "valid mAP@[.5:.95]"), strict=True):
        axis.set_title(title), axis.set_xlabel("epoch"), axis.set_ylim(0, 1)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("the float recipe across seeds and precisions")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
