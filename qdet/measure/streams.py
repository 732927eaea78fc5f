"""Throughput as a server runs a model: every core busy, each runtime at its best setting.

A latency figure keeps one image in flight; a server keeps the cores full. So each variant is
also run the ways its users serve it on this machine: qdet's artifacts, torch's and ONNX
Runtime's models in N worker processes of T threads (N x T = the benchmark's threads; every
split is tried and the best kept), OpenVINO with its ``THROUGHPUT`` performance hint (the
streams and infer requests it chooses, fed asynchronously), as its docs recommend for servers.
One set of workers serves every setting of a variant (as many processes as the widest split):
each loads the model once (ONNX Runtime once per thread count: its sessions fix their threads),
then runs each setting it takes part in: the settings' workers warm up with its threads, start
together and run for a fixed time; the rate is the sum of each worker's images over its own time.
The workers fork from one server process that imported torch, torchvision and qdet once
(multiprocessing's forkserver): process start, import and load were most of the throughput
rows' time when each setting launched its own, and the imports most of what remained.

A worker (:func:`_worker`) loads, sends ``loaded``, then for each thread count it receives,
warms up, sends ``ready``, waits for ``go``, runs, and sends ``(images, seconds)``; it ends when
it receives ``None``. A failure is sent as ``("failed", message)``.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from qdet.core.lifeline import die_with_parent
from qdet.data.dataset import load_image
from qdet.peers.openvino import compile_model, read_spec, spec_model
from qdet.variants.artifacts import load_variant
from qdet.variants.table import DEPLOYED, REGISTERED_INT8, int8_peers, variant

SYNC = "ov-async"  # MODE of an OpenVINO worker fed through an AsyncInferQueue (THROUGHPUT hint)
CALLS = "calls"  # MODE of a worker calling the detector one image at a time
WARMUP = 3
START_SECONDS = 600  # a worker that has not loaded its model by then is stuck
# The workers fork from a server that imported this module (torch, torchvision, qdet) once, and
# the main module: each child would otherwise import the main module again (multiprocessing runs
# it as ``__mp_main__`` in every child it starts, unless the server already holds it).
FORKSERVER = multiprocessing.get_context("forkserver")
FORKSERVER.set_forkserver_preload(["__main__", __name__])
Worker = tuple[multiprocessing.process.BaseProcess, Connection]  # a worker process, our end of its pipe


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


class Workers:
    """``processes`` workers of one variant, loaded (see the module doc); :meth:`rate` runs one
    setting on the first ``n`` of them."""

    def __init__(
        self,
        name: str,
        artifact: Path,
        images: list[Path],
        mode: str,
        processes: int,
        threads: list[int],
        seconds: float,
    ) -> None:
        self.name = name
        self.workers: list[Worker] = []
        try:
            for _ in range(processes):
                self.workers.append(start_worker(name, artifact, images, mode, threads, seconds))
            for worker in self.workers:
                self._expect(worker, "loaded", START_SECONDS)
        except RuntimeError:
            self.close(kill=True)  # the others loaded or not: none outlives the error
            raise

    def _failed(self, why: str) -> RuntimeError:
        return RuntimeError(f"throughput worker for {self.name} failed: {why}")

    def _receive(self, worker: Worker, timeout: float | None) -> object:
        process, conn = worker
        if timeout is not None and not conn.poll(timeout):
            raise self._failed(f"no answer in {timeout:.0f} s")
        try:
            message = conn.recv()
        except EOFError:
            process.join(5)
            message = ("failed", f"its process ended with code {process.exitcode}")
        if isinstance(message, tuple) and message[0] == "failed":
            raise self._failed(message[1])
        return message

    def _expect(self, worker: Worker, word: str, timeout: float | None = None) -> None:
        message = self._receive(worker, timeout)
        if message != word:
            raise self._failed(f"sent {message!r}, not {word!r}")

    def rate(self, processes: int, threads: int) -> float:
        """Images per second of the first ``processes`` workers at ``threads`` each, started together."""
        team = self.workers[:processes]
        for _, conn in team:
            conn.send(threads)
        for worker in team:
            self._expect(worker, "ready")
        for _, conn in team:
            conn.send("go")
        rate = 0.0
        for worker in team:
            images, seconds = self._receive(worker, None)
            rate += images / seconds
        return rate

    def close(self, kill: bool = False) -> None:
        """Let the workers end (``None`` sent), or ``kill`` them."""
        for process, conn in self.workers:
            if kill or not process.is_alive():
                process.kill()
            else:
                try:
                    conn.send(None)
                except OSError:  # it ended meanwhile
                    process.kill()
        for process, conn in self.workers:
            process.join(60)
            if process.exitcode is None:
                process.kill()
                process.join()
            conn.close()


def start_worker(
    name: str, artifact: Path, images: list[Path], mode: str, threads: list[int], seconds: float
) -> Worker:
    """A worker process forked from the server (see the module doc), and its end of the pipe."""
    here, there = FORKSERVER.Pipe()
    process = FORKSERVER.Process(
        target=_worker, args=(name, artifact, images, mode, threads, seconds, there), daemon=True
    )
    process.start()
    there.close()
    return process, here


def throughput(name: str, how: str, artifact: Path, images: list[Path], threads: int, seconds: float) -> dict:
    """The best images/s of a variant over :func:`settings`, which setting gave it, and every one
    tried, all from one set of workers."""
    tried_settings = settings(how, threads)
    mode = tried_settings[0][0]
    widest = max(n for _, n, _ in tried_settings)
    counts = sorted({t for _, _, t in tried_settings}, reverse=True)
    workers = Workers(name, artifact, images, mode, widest, counts, seconds)
    try:
        tried = {label(m, n, t): workers.rate(n, t) for m, n, t in tried_settings}
    except RuntimeError:
        workers.close(kill=True)
        raise
    workers.close()
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


def _worker(
    name: str,
    artifact: Path,
    images: list[Path],
    mode: str,
    threads: list[int],
    seconds: float,
    conn: Connection,
) -> None:
    """One worker (see the module doc); its failure goes to the parent, which raises it."""
    die_with_parent(signal.SIGKILL)  # the forkserver's child: the server ends with the benchmark
    try:
        if mode == SYNC:
            _async_worker(artifact, threads, seconds, images, conn)
        else:
            _calls_worker(name, artifact, threads, seconds, images, conn)
    except Exception as error:  # sent to the parent, which raises it naming the variant
        conn.send(("failed", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def _calls_worker(
    name: str, artifact: Path, threads: list[int], seconds: float, images: list[Path], conn: Connection
) -> None:
    per_threads = variant(name).load == "onnx"  # a session's threads are fixed when it is made
    models = {t: load_variant(name, artifact, t) for t in (threads if per_threads else threads[:1])}
    tensors = [load_image(p) for p in images]
    conn.send("loaded")
    while (count := conn.recv()) is not None:
        torch.set_num_threads(count)
        model = models[count if per_threads else threads[0]]
        with torch.inference_mode():
            for i in range(WARMUP):
                model([tensors[i % len(tensors)]])
            _ready(conn)
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                model([tensors[done % len(tensors)]])
                done += 1
        conn.send((done, time.perf_counter() - start))


def _async_worker(
    artifact: Path, threads: list[int], seconds: float, images: list[Path], conn: Connection
) -> None:
    import openvino as ov  # only the OpenVINO worker needs it

    spec = read_spec(artifact)
    config = {k: v for k, v in spec["config"].items() if k not in ("PERFORMANCE_HINT", "NUM_STREAMS")}
    compiled = compile_model(spec_model(artifact), {**config, "PERFORMANCE_HINT": "THROUGHPUT"}, threads[0])
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    done = [0]
    queue.set_callback(lambda request, data: done.__setitem__(0, done[0] + 1))
    arrays = [load_image(p).numpy() for p in images]
    conn.send("loaded")
    while conn.recv() is not None:  # one setting: the threads it was compiled with
        for i in range(max(WARMUP, len(queue))):
            queue.start_async({0: arrays[i % len(arrays)]})
        queue.wait_all()
        _ready(conn)
        done[0], sent, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            queue.start_async({0: arrays[sent % len(arrays)]})  # blocks while every request is busy
            sent += 1
        queue.wait_all()
        conn.send((done[0], time.perf_counter() - start))


def _ready(conn: Connection) -> None:
    conn.send("ready")
    conn.recv()  # "go"
