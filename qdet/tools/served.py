"""The served model's speed, as a client sees it: ``mlflow models serve`` of a registered model on
127.0.0.1, JPEG requests (base64 in a ``dataframe_split`` body, as the README shows) from one
client, then from several at once; p50 latency, requests/s, failures, and the server's memory
(its processes' RSS) before and after::

    qdet-served models:/qdet-gtsdb-resnet18@champion data/processed/images/00009.ppm \\
        --workers 1 --threads 2

Each served figure is set against the model's own artifact timed in the same window: rounds
alternate a served block with the artifact alone (its p50 in this process, in steady state,
beside the one-client block; its best throughput over processes x threads, beside the
many-client blocks), the server idle meanwhile. A figure from another process at another time
moves by 15-30% on a shared machine, more than the overhead being measured.

Only loopback is ever addressed; every loop is bounded in requests and time.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import psutil
import requests
import torch
import typer
import yaml
from PIL import Image

from qdet.core.console import console, exit_on_error
from qdet.core.errors import QdetError
from qdet.data.dataset import load_image
from qdet.measure.speed import time_steady
from qdet.measure.streams import throughput
from qdet.variants.artifacts import load_variant
from qdet.variants.table import RECOMMENDED
from qdet.variants.table import variant as table_row

app = typer.Typer(add_completion=False)
HOST = "127.0.0.1"


class ServeFailed(QdetError):
    """The server did not come up, or answered with errors."""


def jpeg_body(image: Path) -> bytes:
    """A request for one image, JPEG-encoded (quality 90) and base64'd, as a client sends it."""
    buffer = io.BytesIO()
    Image.open(image).convert("RGB").save(buffer, format="JPEG", quality=90)
    cell = base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[cell]]}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(model: str, port: int, workers: int, threads: int | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, **({"QDET_THREADS": str(threads)} if threads else {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # its uvicorn
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    command += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    with log.open("w") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_ready(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServeFailed(f"mlflow models serve exited ({server.returncode}) before it answered {url}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise ServeFailed(f"{url} did not answer /ping within {seconds:.0f} s")


def drive(url: str, body: bytes, clients: int, count: int) -> tuple[list[float], float, int]:
    """``count`` requests from ``clients`` concurrent clients (one session each): the seconds of
    each request, the seconds of the whole block, and how many failed."""
    per_client = [count // clients + (i < count % clients) for i in range(clients)]

    def client(n: int) -> tuple[list[float], int]:
        session, times, failed = requests.Session(), [], 0
        headers = {"Content-Type": "application/json"}
        for _ in range(n):
            start = time.perf_counter()
            answer = session.post(f"{url}/invocations", data=body, headers=headers, timeout=60)
            times.append(time.perf_counter() - start)
            failed += answer.status_code != 200
        return times, failed

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, per_client))
    elapsed = time.perf_counter() - start
    return [t for ts, _ in results for t in ts], elapsed, sum(f for _, f in results)


def alternate(
    serve: Callable[[int], tuple[list[float], float, int]],
    own_latency: Callable[[], list[float]],
    own_rate: Callable[[], float],
    clients: list[int],
    rounds: int,
) -> list[dict[str, object]]:
    """One record per client count: the served p50 and req/s over ``rounds`` rounds, each round
    running every served block next to the artifact's own figure of the same kind (its latency
    beside one client, its throughput beside several), and the ratios pooled and per round."""
    served = {c: [] for c in clients}
    own_times: list[list[float]] = []
    own_rates: dict[int, list[float]] = {c: [] for c in clients}
    for _ in range(rounds):
        for c in clients:
            served[c].append(serve(c))
            if c == 1:
                own_times.append(own_latency())
            else:
                own_rates[c].append(own_rate())
    own_p50 = [statistics.median(t) for t in own_times]
    records = []
    for c in clients:
        blocks = served[c]
        times = [t for ts, _, _ in blocks for t in ts]
        record: dict[str, object] = {
            "clients": c,
            "requests": len(times),
            "failed": sum(f for _, _, f in blocks),
            "p50_ms": statistics.median(times) * 1e3,
            "req_per_s": statistics.fmean(len(ts) / e for ts, e, _ in blocks),  # as the artifact's
        }
        if c == 1:
            own = statistics.median([t for ts in own_times for t in ts])
            record["artifact_p50_ms"] = own * 1e3
            record["x_artifact_p50"] = statistics.median(times) / own
            record["x_artifact_p50_per_round"] = [
                statistics.median(ts) / o for (ts, _, _), o in zip(blocks, own_p50, strict=True)
            ]
        else:
            rate = statistics.fmean(own_rates[c])
            record["artifact_img_per_s"] = rate
            record["of_artifact_throughput"] = record["req_per_s"] / rate
            record["of_artifact_throughput_per_round"] = [
                len(ts) / e / r for (ts, e, _), r in zip(blocks, own_rates[c], strict=True)
            ]
        records.append(record)
    return records


def server_rss_mb(server: subprocess.Popen) -> float:
    """RSS of the server and every process under it (uvicorn workers)."""
    root = psutil.Process(server.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6


def artifact_of(model: str) -> Path:
    """The detector artifact inside a pyfunc model: a model folder, or a ``models:/`` URI
    (downloaded, as ``mlflow models serve`` does)."""
    folder = (
        Path(model) if Path(model).is_dir() else Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    )
    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text())
        path = folder / spec["flavors"]["python_function"]["artifacts"]["detector"]["path"]
    except (OSError, KeyError, TypeError) as exc:
        why = f"no 'detector' artifact in its MLmodel: {exc}"
        raise ServeFailed(f"{model}: not a qdet model ({why})") from None
    return path


@app.command()
@exit_on_error
def main(
    model: str = typer.Argument(..., help="models:/<name>@<alias> or a model folder"),
    image: Path = typer.Argument(..., help="the image every request carries"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
    threads: int = typer.Option(0, min=0, help="torch threads per worker (0: torch's default)"),
    clients: list[int] = typer.Option([1, 4], help="concurrent clients, one measurement each"),
    requests_per_block: int = typer.Option(100, "--requests", min=1, help="requests per block"),
    rounds: int = typer.Option(3, min=1, help="rounds, each a served block then the artifact alone"),
    seconds: float = typer.Option(3.0, min=0.5, help="seconds of each artifact throughput run"),
    variant: str = typer.Option(RECOMMENDED, help="the variant table row the artifact loads as"),
    out: Path = typer.Option(None, help="JSON of the figures"),
) -> None:
    try:
        row = table_row(variant)  # how the artifact loads, as the variant table says
    except KeyError as exc:
        raise ServeFailed(f"--variant: {exc.args[0]}") from None
    artifact = artifact_of(model)
    # the artifact at its best on the cores the server has: its p50 with all of them, its
    # throughput over every processes x threads split (a server's choice is measured against it)
    cores = workers * threads if threads else torch.get_num_threads()
    torch.set_num_threads(cores)
    detector, tensor = load_variant(variant, artifact, cores), load_image(image)
    port = free_port()
    url = f"http://{HOST}:{port}"
    body = jpeg_body(image)
    log = Path(f"/tmp/qdet-serve-{port}.log")
    server = start(model, port, workers, threads or None, log)
    try:
        wait_ready(url, server)
        drive(url, body, 1, 10)  # warm-up: every worker's first requests
        before = server_rss_mb(server)
        runs = alternate(
            lambda c: drive(url, body, c, requests_per_block),
            lambda: time_steady({"artifact": detector}, [tensor], 3, 1, requests_per_block)["artifact"],
            lambda: throughput(variant, row.load, artifact, [image], cores, seconds)["img_per_s"],
            clients,
            rounds,
        )
        after = server_rss_mb(server)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    report = {"model": model, "workers": workers, "threads": threads or "torch default", "runs": runs}
    report |= {"rss_mb_before": before, "rss_mb_after": after, "jpeg_bytes": len(body), "rounds": rounds}
    for line in lines(runs):
        console.print(line, highlight=False)
    console.print(f"server RSS {before:.0f} MB before, {after:.0f} MB after the runs", highlight=False)
    if out:
        out.write_text(json.dumps(report, indent=1))
    if any(run["failed"] for run in runs):
        raise ServeFailed(f"failed requests: see {log}")


def lines(runs: list[dict]) -> list[str]:
    """One console line per client count, with its ratio to the artifact and each round's."""
    out = []
    for run in runs:
        line = f"{run['clients']} client(s): p50 {run['p50_ms']:.1f} ms, {run['req_per_s']:.1f} req/s"
        line += f", {run['failed']} failed; "
        if "x_artifact_p50" in run:
            rounds = ", ".join(f"x{r:.2f}" for r in run["x_artifact_p50_per_round"])
            line += f"x{run['x_artifact_p50']:.2f} the artifact's p50"
            line += f" ({run['artifact_p50_ms']:.1f} ms; rounds {rounds})"
        else:
            rounds = ", ".join(f"{r:.0%}" for r in run["of_artifact_throughput_per_round"])
            line += f"{run['of_artifact_throughput']:.0%} of the artifact's throughput"
            line += f" ({run['artifact_img_per_s']:.1f} img/s; rounds {rounds})"
        out.append(line)
    return out


if __name__ == "__main__":
    app()
