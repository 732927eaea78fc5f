"""Throughput as a server runs a model: every core busy, each runtime at its best setting.

A latency figure keeps one image in flight; a server keeps the cores full. So each variant is
also run the ways its users serve it on this machine: qdet's artifacts, torch's and ONNX
Runtime's models in N worker processes of T threads (N x T = the benchmark's threads; every
split is tried and the best kept), OpenVINO with its ``THROUGHPUT`` performance hint (the
streams and infer requests it chooses, fed asynchronously), as its docs recommend for servers.
Workers load and warm up first, then all start together and run for a fixed time; the rate is
the sum of each worker's images over its own time.

``python -m qdet.measure.streams VARIANT ARTIFACT THREADS SECONDS MODE IMAGE...`` is one worker:
it prints ``ready``, waits for a line on its standard input, runs, and prints ``images seconds``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from qdet.data.dataset import load_image
from qdet.peers.openvino import compile_model, read_spec, spec_model
from qdet.variants.artifacts import load_variant
from qdet.variants.table import DEPLOYED, REGISTERED_INT8, int8_peers, variant

SYNC = "ov-async"  # MODE of an OpenVINO worker fed through an AsyncInferQueue (THROUGHPUT hint)
CALLS = "calls"  # MODE of a worker calling the detector one image at a time
WARMUP = 3


def splits(threads: int) -> list[tuple[int, int]]:
    """(processes, threads each) whose product is ``threads``: 1 x 2 and 2 x 1 on two cores."""
    return [(n, threads // n) for n in range(1, threads + 1) if threads % n == 0]


def settings(how: str, threads: int) -> list[tuple[str, int, int]]:
    """(mode, processes, threads each) to try for a variant loaded as ``how`` (the variant
    table's loader): OpenVINO's throughput hint in one process, the other runtimes every split."""
    if how == "openvino":
        return [(SYNC, 1, threads)]
    return [(CALLS, n, t) for n, t in splits(threads)]


def label(mode: str, processes: int, threads: int) -> str:
    if mode == SYNC:
        return f"OpenVINO THROUGHPUT hint, {threads} threads"
    return (
        f"{processes} process{'es' if processes > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
    )


def run_workers(
    name: str, artifact: Path, images: list[Path], mode: str, processes: int, threads: int, seconds: float
) -> float:
    """Images per second of ``processes`` workers started together (see the module doc)."""
    command = [sys.executable, "-m", __name__, name, str(artifact), str(threads), str(seconds), mode]
    workers = [
        subprocess.Popen(
            [*command, *map(str, images)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(
                    f"throughput worker for {name} failed: {worker.stderr.read().strip()[-500:]}"
                )
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        rate = 0.0
        for worker in workers:
            out, err = worker.communicate(timeout=seconds * 10 + 120)
            if worker.returncode:
                raise RuntimeError(f"throughput worker for {name} failed: {err.strip()[-500:]}")
            count, elapsed = (float(v) for v in out.split()[-2:])
            rate += count / elapsed
        return rate
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def throughput(name: str, how: str, artifact: Path, images: list[Path], threads: int, seconds: float) -> dict:
    """The best images/s of a variant over :func:`settings`, which setting gave it, and every one tried."""
    tried = {
        label(mode, n, t): run_workers(name, artifact, images, mode, n, t, seconds)
        for mode, n, t in settings(how, threads)
    }
    best = max(tried, key=tried.__getitem__)
    return {"img_per_s": tried[best], "setting": best, "tried": tried}


def throughput_rows(
    files: dict[str, Path], best: dict[str, str | None], images: list[Path], threads: int, seconds: float
) -> dict[str, dict]:
    """:func:`throughput` of qdet's registered int8 variants and their deploy rows (ONNX Runtime,
    OpenVINO), every int8 peer and the best float row (``best["best_float"]``); nothing when
    ``seconds`` is 0."""
    if seconds <= 0:
        return {}
    names = [*REGISTERED_INT8, *DEPLOYED, *int8_peers(list(files)), best.get("best_float")]
    return {
        name: throughput(name, variant(name).load, files[name], images, threads, seconds)
        for name in dict.fromkeys(names)
        if name in files
    }


def throughput_lines(rows: dict[str, dict]) -> list[str]:
    """Console lines, the fastest first."""
    ordered = sorted(rows.items(), key=lambda item: -item[1]["img_per_s"])
    return [f"throughput {name}: {row['img_per_s']:.1f} img/s ({row['setting']})" for name, row in ordered]


def _calls_worker(
    name: str, artifact: Path, threads: int, seconds: float, images: list[Path]
) -> tuple[int, float]:
    torch.set_num_threads(threads)
    model = load_variant(name, artifact, threads)
    tensors = [load_image(p) for p in images]
    with torch.inference_mode():
        for i in range(WARMUP):
            model([tensors[i % len(tensors)]])
        _ready()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model([tensors[count % len(tensors)]])
            count += 1
    return count, time.perf_counter() - start


def _async_worker(artifact: Path, threads: int, seconds: float, images: list[Path]) -> tuple[int, float]:
    import openvino as ov  # only the OpenVINO worker needs it

    spec = read_spec(artifact)
    config = {k: v for k, v in spec["config"].items() if k not in ("PERFORMANCE_HINT", "NUM_STREAMS")}
    compiled = compile_model(spec_model(artifact), {**config, "PERFORMANCE_HINT": "THROUGHPUT"}, threads)
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    done = [0]
    queue.set_callback(lambda request, data: done.__setitem__(0, done[0] + 1))
    arrays = [load_image(p).numpy() for p in images]
    for i in range(max(WARMUP, len(queue))):
        queue.start_async({0: arrays[i % len(arrays)]})
    queue.wait_all()
    _ready()
    done[0], sent, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async({0: arrays[sent % len(arrays)]})  # blocks while every request is busy
        sent += 1
    queue.wait_all()
    return done[0], time.perf_counter() - start


def _ready() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def main(argv: list[str]) -> None:
    name, artifact, threads, seconds, mode = argv[0], Path(argv[1]), int(argv[2]), float(argv[3]), argv[4]
    images = [Path(p) for p in argv[5:]]
    if mode == SYNC:
        count, elapsed = _async_worker(artifact, threads, seconds, images)
    else:
        count, elapsed = _calls_worker(name, artifact, threads, seconds, images)
    print(f"{count} {elapsed:.6f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
