"""Bootstrap intervals: how far a median latency ratio or an mAP could move by chance.

Resampling is paired: a speedup resamples benchmark *rounds* (every variant ran on the same
image in a round), an mAP difference resamples valid *images* (every variant saw the same
ones), so what varies alike in both does not widen the interval of their difference.
Resamples are drawn from a fixed seed: the same inputs give the same interval.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95
SAMPLES = 2000


def resample(n: int, samples: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """``samples`` rows of ``n`` indices drawn with replacement from ``range(n)``."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def resample_blocks(blocks: int, size: int, samples: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """Like :func:`resample` over ``blocks`` blocks of ``size`` consecutive values, drawn whole:
    calls of one block ran back to back and vary together, so the block is the unit of chance."""
    drawn = resample(blocks, samples, seed)
    return (drawn[:, :, None] * size + np.arange(size)).reshape(samples, blocks * size)


def interval(samples: np.ndarray, point: float, level: float = LEVEL) -> list[float]:
    """Percentile interval of ``samples``, widened to hold ``point`` (with very few rounds
    every resampled median can fall on one side of the observed one). NaN samples (a resample
    where the statistic is undefined, e.g. no ground truth drawn) are left out."""
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return [float(min(lo, point)), float(max(hi, point))]


def medians(times: list[float], rows: np.ndarray) -> np.ndarray:
    """Median of ``times`` in each resample (``rows`` from :func:`resample`)."""
    return np.median(np.asarray(times)[rows], axis=1)


def disjoint(a: list[float], b: list[float]) -> bool:
    """True when two intervals do not overlap: the difference is beyond noise."""
    return a[1] < b[0] or b[1] < a[0]
