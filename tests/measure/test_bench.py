"""Benchmark statistics: rotation, percentiles, medians, speedups and their paired intervals."""

import numpy as np
import pytest

from qdet.measure.speed import fastest, percentile, summarize, time_interleaved, time_steady
from qdet.measure.stats import disjoint, interval, medians, resample, resample_blocks
from qdet.variants.table import int8_peers, non_int8


def test_percentile_interpolates_between_ranks():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 5.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.9) == pytest.approx(4.6)
    assert percentile([7.0], 0.9) == 7.0


def test_rounds_rotate_and_each_round_times_every_variant_on_one_image():
    calls = []
    variants = {name: (lambda images, name=name: calls.append((name, images[0]))) for name in "abc"}
    time_interleaved(variants, [0, 1], warmup=0, rounds=3)
    rounds = [calls[i : i + 3] for i in range(0, 9, 3)]
    assert [[name for name, _ in r] for r in rounds] == [list("abc"), list("bca"), list("cab")]
    assert [{image for _, image in r} for r in rounds] == [{0}, {1}, {0}]


class ColdCaches:
    """Fake detectors on a fake clock: a call takes ``warm`` seconds, or ten times that when
    another detector ran last (its caches are cold), as a big model after another one does."""

    def __init__(self, warm: dict[str, float]) -> None:
        self.now, self.last, self.warm, self.calls = 0.0, None, warm, []

    def clock(self) -> float:
        return self.now

    def variants(self) -> dict:
        def call(images, name):
            self.now += self.warm[name] * (1 if self.last == name else 10)
            self.last = name
            self.calls.append((name, images[0]))

        return {name: (lambda images, name=name: call(images, name)) for name in self.warm}


def test_steady_state_blocks_leave_the_cold_first_call_untimed():
    fake = ColdCaches({"a": 0.010, "b": 0.020, "c": 0.040})
    times = time_steady(fake.variants(), [0, 1, 2], warmup=1, rounds=3, block=4, clock=fake.clock)
    assert {name: sorted({round(t, 9) for t in ts}) for name, ts in times.items()} == {
        "a": [0.010], "b": [0.020], "c": [0.040]
    }  # fmt: skip
    assert all(len(ts) == 12 for ts in times.values())
    order = [name for name, _ in fake.calls[3:]]  # after one warm-up call each
    blocks = [order[i] for i in range(0, len(order), 5)]  # 1 untimed + 4 timed per block
    assert blocks == list("abcbcacab")
    images = [image for name, image in fake.calls[3:] if name == "b"]
    assert images == [0, 0, 1, 2, 0] + [1, 1, 2, 0, 1] + [2, 2, 0, 1, 2]  # call k of round r: image r*4+k
    interleaved = time_interleaved(ColdCaches({"a": 0.01, "b": 0.02}).variants(), [0], 0, 2)
    assert interleaved  # the old regime, kept for compare_engines, times every call cold


def test_block_resampling_draws_whole_rounds():
    rows = resample_blocks(4, 3, samples=50)
    assert rows.shape == (50, 12)
    starts = rows[:, ::3]
    assert (
        (starts % 3 == 0).all()
        and (rows[:, 1::3] == starts + 1).all()
        and (rows[:, 2::3] == starts + 2).all()
    )
    assert (resample_blocks(5, 1, samples=20) == resample(5, samples=20)).all()


def test_summarize_medians_speedups_and_best_float():
    times = {"eager": [0.10, 0.12, 0.11], "ort": [0.05, 0.06, 0.055], "int8": [0.02, 0.025, 0.03]}
    out = summarize(times, "eager", floats=("eager", "ort"))
    assert out["int8"]["latency_ms_p50"] == pytest.approx(25.0)
    assert out["int8"]["latency_ms_p90"] == pytest.approx(29.0)
    assert out["int8"]["fps"] == pytest.approx(40.0)
    assert out["int8"]["speedup_vs_float_eager"] == pytest.approx(0.11 / 0.025)
    assert out["int8"]["speedup_vs_best_float"] == pytest.approx(0.055 / 0.025)
    assert out["ort"]["speedup_vs_best_float"] == pytest.approx(1.0)
    assert "speedup_vs_best_float" not in summarize(times, "eager")["int8"]


def test_best_float_is_the_fastest_non_int8_row_of_any_runtime_and_the_int8_peer_likewise():
    """bf16 and OpenVINO rows count as floats; int8 peers are not floats; qdet's int8 is neither."""
    times = {
        "float_eager": [0.10] * 3,
        "float_inductor": [0.08] * 3,
        "ov_bf16": [0.05] * 3,
        "ort_int8": [0.05] * 3,
        "ov_int8": [0.04] * 3,
        "qat": [0.02] * 3,
    }
    floats, peers = non_int8(list(times)), int8_peers(list(times))
    assert floats == ["float_eager", "float_inductor", "ov_bf16"] and peers == ["ort_int8", "ov_int8"]
    assert fastest(times, floats) == "ov_bf16" and fastest(times, peers) == "ov_int8"
    out = summarize(times, "float_eager", floats, peers)
    assert out["qat"]["speedup_vs_best_float"] == pytest.approx(2.5)
    assert out["qat"]["speedup_vs_best_int8_peer"] == pytest.approx(2.0)
    assert out["qat"]["speedup_vs_best_int8_peer_ci95"] == pytest.approx([2.0, 2.0])
    assert "speedup_vs_best_int8_peer" not in summarize(times, "float_eager", floats)["qat"]
    assert fastest(times, []) is None


def test_speedup_intervals_are_paired_by_round():
    """A slowdown that hits every variant in the same round (a busy neighbour) leaves the ratio
    alone: the paired interval is exact, though each latency's interval is wide."""
    load = np.linspace(1.0, 3.0, 15)
    times = {"eager": list(0.1 * load), "int8": list(0.025 * load)}
    row = summarize(times, "eager", floats=("eager",))["int8"]
    assert row["speedup_vs_float_eager_ci95"] == pytest.approx([4.0, 4.0])
    assert row["speedup_vs_best_float_ci95"] == pytest.approx([4.0, 4.0])
    lo, hi = row["latency_ms_p50_ci95"]
    assert hi - lo > 10


def test_speedup_interval_covers_the_true_ratio_and_pairing_narrows_it():
    """Simulated benchmarks with a known speedup of 2.5: rounds share a slowdown (a noisy
    neighbour hits every variant of a round alike). The 95% interval must hold 2.5 in most of
    them, and be narrow because the resampling is paired by round."""
    covered, widths = 0, []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        shared = rng.lognormal(0.0, 0.3, 40)  # per-round slowdown, large
        times = {
            "a": list(0.1 * shared * rng.lognormal(0.0, 0.03, 40)),
            "b": list(0.04 * shared * rng.lognormal(0.0, 0.03, 40)),
        }
        lo, hi = summarize(times, "a")["b"]["speedup_vs_float_eager_ci95"]
        covered += lo <= 2.5 <= hi
        widths.append(hi - lo)
    assert covered >= 85, covered
    assert np.median(widths) < 0.4  # 0.23 paired; resampled unpaired, the shared slowdown makes it 0.8


def test_interval_widens_to_hold_the_point_and_disjoint():
    assert interval(np.array([2.0, 2.0, 3.0]), 1.0)[0] == 1.0
    assert interval(np.arange(101.0), 50.0) == pytest.approx([2.5, 97.5])
    assert disjoint([1, 2], [2.5, 3]) and disjoint([2.5, 3], [1, 2])
    assert not disjoint([1, 2.6], [2.5, 3])


def test_resample_is_seeded_and_medians_per_row():
    rows = resample(5, samples=4, seed=3)
    assert rows.shape == (4, 5) and (resample(5, samples=4, seed=3) == rows).all()
    assert medians([1.0, 2.0, 3.0], np.array([[0, 0, 2], [2, 2, 1]])).tolist() == [1.0, 3.0]
