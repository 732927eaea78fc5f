"""Latency, throughput, size and memory of detector variants, measured fairly.

All variants are timed in one process with one thread setting, in steady state as a deployment
runs one model: each round gives every variant a block of back-to-back calls, the first of them
untimed (it pays for the caches the variant before it evicted), and the order of the blocks
rotates from round to round, so a noisy neighbour or a frequency change hits every variant
alike; speedups are ratios within that run, their intervals resample whole rounds. Peak memory
needs a process of its own per variant (RSS high-water marks are per process), so it is measured
by :mod:`qdet.measure.memprobe` in subprocesses.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qdet.core.cpu import BF16_FLAGS, cpu_info
from qdet.core.progress import progress_bar
from qdet.measure import stats
from qdet.measure.accuracy import Detector
from qdet.measure.memprobe import probe_peak_rss
from qdet.variants.artifacts import artifact_size, evaluated_variants, load_variant
from qdet.variants.table import REFERENCE, REGISTERED_INT8, int8_peers, non_int8


def _warm_up(variants: dict[str, Detector], images: list[torch.Tensor], calls: int) -> None:
    """``calls`` untimed calls of every variant: compiles, oneDNN primitives, first allocations."""
    for w in range(calls):
        for fn in variants.values():
            fn([images[w % len(images)]])


@torch.inference_mode()
def time_steady(
    variants: dict[str, Detector],
    images: list[torch.Tensor],
    warmup: int,
    rounds: int,
    block: int,
    progress: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per image for each variant, ``rounds * block`` calls each, in call order: after
    ``warmup`` untimed calls of every variant, each round runs every variant for ``1 + block``
    back-to-back calls, of which the first is not timed, in an order rotated by one each round.
    Call ``k`` of round ``r`` takes the same image for every variant."""
    _warm_up(variants, images, warmup)
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)  # rotate: no variant always follows the same neighbour
        for name in names[shift:] + names[:shift]:
            fn = variants[name]
            fn([images[(r * block) % len(images)]])  # untimed: refills the caches
            for k in range(block):
                image = images[(r * block + k) % len(images)]
                start = clock()
                fn([image])
                times[name].append(clock() - start)
        if progress:
            progress()
    return times


def time_with_progress(
    variants: dict[str, Detector], images: list[torch.Tensor], warmup: int, rounds: int, block: int
) -> dict[str, list[float]]:
    """:func:`time_steady` behind a progress bar of its rounds."""
    with progress_bar() as progress:
        task = progress.add_task(
            "benchmark rounds", total=rounds, info=f"blocks of {block} calls, rotating order"
        )
        return time_steady(variants, images, warmup, rounds, block, lambda: progress.update(task, advance=1))


@torch.inference_mode()
def time_interleaved(
    variants: dict[str, Detector],
    images: list[torch.Tensor],
    warmup: int,
    rounds: int,
    progress: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per image for each variant; every round runs every variant on the same image, in
    an order rotated by one each round."""
    _warm_up(variants, images, warmup)
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        image = images[r % len(images)]
        shift = r % len(names)  # rotate: no variant always runs first (cold caches) or after another
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            variants[name]([image])
            times[name].append(time.perf_counter() - start)
        if progress:
            progress()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fastest(times: dict[str, list[float]], among: list[str]) -> str | None:
    """The variant of ``among`` with the lowest median time in this run (None if none was timed)."""
    timed = [n for n in among if n in times]
    return min(timed, key=lambda n: statistics.median(times[n])) if timed else None


def summarize(
    times: dict[str, list[float]],
    reference: str,
    floats: list[str] = (),
    int8_peers: list[str] = (),
    block: int = 1,
) -> dict[str, dict[str, float | list[float]]]:
    """Latency p50/p90, images/s and the speedups of every variant: vs ``reference``, vs the
    best float (``speedup_vs_best_float``: the fastest of ``floats``, every variant that is not
    int8) and vs the best int8 peer (``speedup_vs_best_int8_peer``: the fastest of
    ``int8_peers``), the latter two when any of them was timed. Each speedup and the p50 come
    with a 95% interval (``*_ci95``) from resampling rounds (``block`` calls each, as
    :func:`time_steady` times them), paired: a resample takes the same rounds of every variant,
    and the best of a group is chosen again in each."""
    rows = stats.resample_blocks(len(times[reference]) // block, block)
    boot = {name: stats.medians(ts, rows) for name, ts in times.items()}
    ref = statistics.median(times[reference])
    groups = {}
    for key, among in (("best_float", floats), ("best_int8_peer", int8_peers)):
        timed = [n for n in among if n in times]
        if timed:
            best = min(statistics.median(times[n]) for n in timed)
            groups[key] = (best, np.min([boot[n] for n in timed], axis=0))
    out = {}
    for name, ts in times.items():
        p50 = statistics.median(ts)
        out[name] = {
            "latency_ms_p50": p50 * 1e3,
            "latency_ms_p50_ci95": stats.interval(boot[name] * 1e3, p50 * 1e3),
            "latency_ms_p90": percentile(ts, 0.9) * 1e3,
            "fps": 1.0 / p50,
            "speedup_vs_float_eager": ref / p50,
            "speedup_vs_float_eager_ci95": stats.interval(boot[reference] / boot[name], ref / p50),
        }
        for key, (best, best_boot) in groups.items():
            out[name][f"speedup_vs_{key}"] = best / p50
            out[name][f"speedup_vs_{key}_ci95"] = stats.interval(best_boot / boot[name], best / p50)
    return out


def regime(threads: int, warmup: int, rounds: int, block: int) -> dict[str, object]:
    """How the latencies were timed, and the one thread rule every runtime got: what the report
    states beside the figures."""
    return {
        "timing": "steady state: every round runs each variant for one block of back-to-back calls, "
        "the first untimed; the order of the blocks rotates by one each round",
        "warmup_calls": warmup,
        "rounds": rounds,
        "timed_calls_per_block": block,
        "threads": threads,
        "thread_rule": f"{threads} threads for every runtime, each with its own default wait policy: torch's "
        "OpenMP as shipped (OMP_WAIT_POLICY unset), ONNX Runtime's intra-op spinning on (its default), "
        "OpenVINO's LATENCY hint with one stream",
    }


def environment(threads: int) -> dict[str, object]:
    """The machine and the runtimes a result was measured with: a ratio from another CPU or
    another runtime version is another measurement."""
    info = cpu_info()
    flags = set(info.get("flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", *BF16_FLAGS)
    versions = {}
    for package in ("torch", "torchao", "onnxruntime", "openvino", "nncf"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": info.get("model name") or platform.processor() or "unknown",
        "cpu_family": info.get("cpu family", "unknown"),
        "cpu_flags": " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted),
        **versions,
        "threads": threads,
        "quantized_engine": torch.backends.quantized.engine,
        "python": platform.python_version(),
    }


def complete_rows(
    result: dict[str, dict[str, float]],
    files: dict[str, Path],
    maps: dict[str, dict[str, float]],
    probe_image: Path,
    threads: int,
    float_name: str,
) -> None:
    """Add each variant's file size, peak memory (fresh process) and mAP@.5, and the int8 size
    ratios against ``float_name``, the float artifact in the int8 ones' format, in place. The
    memory probes run two at a time: a process's peak does not depend on its neighbour's."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        probes = {
            name: pool.submit(probe_peak_rss, name, files[name], probe_image, 3, threads) for name in result
        }
    for name, row in result.items():
        row["size_mb"] = artifact_size(files[name]) / 1e6
        peak, baseline = probes[name].result()
        row["peak_rss_mb"], row["model_rss_mb"] = peak, peak - baseline
        row["map50"] = maps[name]["map50"]
        row["map50_ci95"] = maps[name]["map50_ci95"]
    reference = result[float_name]["size_mb"]
    for name in REGISTERED_INT8:
        result[name]["size_ratio"] = reference / result[name]["size_mb"]


def variant_files(float_model: Path, exported: Path, peers: Path) -> dict[str, Path]:
    """Every timed variant and its file: eager float, convert's artifacts, every peer built
    (the evaluated ones but the QAT control, which is float eager's speed)."""
    return evaluated_variants(exported, peers, float_model)


def load_variants(files: dict[str, Path], eager: nn.Module, threads: int) -> dict[str, Detector]:
    return {
        name: eager if name == REFERENCE else load_variant(name, path, threads)
        for name, path in files.items()
    }


def best_rows(times: dict[str, list[float]]) -> dict[str, str | None]:
    """The best float (the fastest non-int8 row) and the best int8 peer of a run."""
    return {
        "best_float": fastest(times, non_int8(list(times))),
        "best_int8_peer": fastest(times, int8_peers(list(times))),
    }


def table(result: dict[str, dict], best: dict[str, str | None]) -> str:
    """The console table, fastest first: latency, size, memory and both speedups with their 95%
    intervals; plain fixed-width lines, so a log (no terminal width) keeps one row per variant."""

    def ratio(row: dict, key: str) -> str:
        if key not in row:
            return "-"
        lo, hi = row[f"{key}_ci95"]
        return f"x{row[key]:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = [
        "benchmark, fastest first (95% intervals over rounds):",
        f"{'variant':15s} {'mAP@.5':>6s} {'p50 ms':>7s} {'p90 ms':>7s} {'MB':>6s} {'+RSS MB':>7s}"
        f"  {'vs float eager':20s}  {'vs best float':20s}  {'vs best int8 peer':20s}",
    ]
    for name, row in sorted(result.items(), key=lambda item: item[1]["latency_ms_p50"]):
        lines.append(
            f"{name:15s} {row['map50']:6.3f} {row['latency_ms_p50']:7.1f} {row['latency_ms_p90']:7.1f}"
            f" {row['size_mb']:6.1f} {row['model_rss_mb']:7.0f}  {ratio(row, 'speedup_vs_float_eager'):20s}"
            f"  {ratio(row, 'speedup_vs_best_float'):20s}  {ratio(row, 'speedup_vs_best_int8_peer')}"
        )
    lines.append(
        f"best float (the fastest non-int8): {best['best_float']}; best int8 peer: {best['best_int8_peer']}"
    )
    return "\n".join(lines)
