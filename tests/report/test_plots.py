"""Training curves and detection drawings: per-iteration loss kept out of the CSV, logged at
global steps; readable tags and a legend on detection images."""

import csv

import torch

from qdet.report.plots import (
    PREDICTED,
    TRUTH,
    draw_detections,
    search_plot,
    seed_curves,
    training_curves,
    write_history_csv,
)
from qdet.tracking import numeric_metrics
from qdet.training.loop import epoch_logger


def _history(epochs: int, iterations: int) -> list[dict]:
    return [
        {"epoch": e, "loss": 1.0 / e, "val_map50": 0.5, "val_map": 0.3, "loss_iter": [1.0 / e] * iterations}
        for e in range(1, epochs + 1)
    ]


def test_history_csv_has_one_row_per_epoch_and_no_iteration_lists(tmp_path):
    write_history_csv(_history(3, 2), tmp_path / "h.csv")
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert len(rows) == 3 and "loss_iter" not in rows[0]


def test_curves_draw_with_one_epoch_and_with_many(tmp_path):
    for epochs in (1, 60):
        training_curves(_history(epochs, 5), tmp_path / f"{epochs}.png", "t")
        assert (tmp_path / f"{epochs}.png").stat().st_size > 10_000


class Recorder:
    def __init__(self):
        self.metrics, self.series = [], []

    def log_metrics(self, metrics, step=None, on_parent=False):
        self.metrics.append((numeric_metrics(metrics), step))

    def log_series(self, key, values, steps):
        self.series.append((key, list(values), list(steps)))


def test_iteration_loss_goes_to_global_steps_and_is_no_interval():
    run = Recorder()
    log = epoch_logger(run)
    for row in _history(2, 2):
        log(row["epoch"], row)
    assert [s[2] for s in run.series] == [[1, 2], [3, 4]]
    assert all("loss_iter_lo" not in m for m, _ in run.metrics)  # a 2-element list is not a [lo, hi]
    assert numeric_metrics({"map_ci95": [0.1, 0.2]}) == {"map_ci95_lo": 0.1, "map_ci95_hi": 0.2}


def test_detections_have_filled_tags_and_a_legend():
    image = torch.full((3, 200, 300), 0.9)
    drawn = draw_detections(
        image,
        torch.tensor([[100.0, 80, 160, 140]]),
        ["danger"],
        torch.tensor([0.8]),
        torch.tensor([[10.0, 150, 40, 190]]),
    )
    pixels = drawn.load()
    assert pixels[6, 5] == PREDICTED  # the legend's first tag, top left
    assert TRUTH in {pixels[x, 5] for x in range(drawn.width)}  # and its ground-truth tag
    tag = [pixels[x, y] for x in range(100, 140) for y in range(68, 80)]
    assert tag.count(PREDICTED) > len(tag) * 0.4  # the prediction's tag, filled, above its box


def test_the_search_plot_draws_every_step_and_the_off_switch(tmp_path):
    """A record read back from disk may hold a step whose interval misses its point (made by
    hand, or rounded): the plot still draws, it does not stop the stage."""
    step = {
        "kept_float": [],
        "map50": 0.5,
        "map50_ci95": [0.4, 0.6],
        "latency_ms": 10.0,
        "why": "PTQ as planned",
    }
    odd = {**step, "kept_float": ["roi_heads.box_head.fc7"], "map50": 0.7, "map50_ci95": [0.72, 0.8]}
    record = {"steps": [step, odd], "chosen": 1, "met": True, "reference_map50": 0.7, "max_drop": 0.01}
    search_plot(record, tmp_path / "search.png")
    search_plot(None, tmp_path / "off.png")
    assert (tmp_path / "search.png").stat().st_size > 20_000 and (tmp_path / "off.png").stat().st_size > 5_000


def test_seed_curves_draw_each_precision_in_its_colour(tmp_path):
    """The seed table's picture: fp32 rows blue, bf16 rows orange, both panels drawn."""
    import numpy as np
    from PIL import Image

    def row(seed, precision):
        return {
            "seed": seed,
            "precision": precision,
            "val_map50_per_epoch": [0.2, 0.9, 0.95],
            "val_map_per_epoch": [0.1, 0.6, 0.7],
        }

    def has(pixels, rgb):
        return bool((np.abs(pixels[..., :3].astype(int) - rgb).sum(-1) < 30).any())

    seed_curves([row(0, "fp32"), row(1, "fp32")], tmp_path / "a.png")
    only_fp32 = np.asarray(Image.open(tmp_path / "a.png"))
    assert has(only_fp32, (31, 119, 180)) and not has(only_fp32, (255, 127, 14))  # tab:blue, no tab:orange
    seed_curves([row(0, "fp32"), row(0, "bf16")], tmp_path / "b.png")
    both = np.asarray(Image.open(tmp_path / "b.png"))
    assert has(both, (31, 119, 180)) and has(both, (255, 127, 14))
