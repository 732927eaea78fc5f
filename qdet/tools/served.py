"""The served model's speed, as a client sees it: ``mlflow models serve`` of a registered model on
127.0.0.1, JPEG requests (base64 in a ``dataframe_split`` body, as the README shows) from one
client, then from several at once; p50 latency, requests/s, failures, and the server's memory
(its processes' RSS) before and after, set against the artifact's own figures from
``metrics/benchmark.json``::

    qdet-served models:/qdet-gtsdb-resnet18@champion data/processed/images/00009.ppm \\
        --workers 2 --threads 1 --bench metrics/benchmark.json

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests
import typer
from PIL import Image

from qdet.core.console import console, exit_on_error
from qdet.core.errors import QdetError
from qdet.variants.table import RECOMMENDED

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


def drive(url: str, body: bytes, clients: int, count: int) -> dict[str, float]:
    """``count`` requests from ``clients`` concurrent clients (one session each)."""
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
    times = [t for ts, _ in results for t in ts]
    return {
        "clients": clients,
        "requests": count,
        "failed": sum(f for _, f in results),
        "p50_ms": statistics.median(times) * 1e3,
        "req_per_s": count / elapsed,
    }


def server_rss_mb(server: subprocess.Popen) -> float:
    """RSS of the server and every process under it (uvicorn workers)."""
    root = psutil.Process(server.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6


@app.command()
@exit_on_error
def main(
    model: str = typer.Argument(..., help="models:/<name>@<alias> or a model folder"),
    image: Path = typer.Argument(..., help="the image every request carries"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
    threads: int = typer.Option(0, min=0, help="torch threads per worker (0: torch's default)"),
    clients: list[int] = typer.Option([1, 4], help="concurrent clients, one measurement each"),
    requests_per_run: int = typer.Option(200, "--requests", min=1),
    bench: Path = typer.Option(None, help="metrics/benchmark.json: the artifact's own figures"),
    variant: str = typer.Option(RECOMMENDED, help="the benchmark row of the served model"),
    out: Path = typer.Option(None, help="JSON of the figures"),
) -> None:
    port = free_port()
    url = f"http://{HOST}:{port}"
    body = jpeg_body(image)
    log = Path(f"/tmp/qdet-serve-{port}.log")
    server = start(model, port, workers, threads or None, log)
    try:
        wait_ready(url, server)
        drive(url, body, 1, 10)  # warm-up: every worker's first requests
        before = server_rss_mb(server)
        runs = [drive(url, body, c, requests_per_run) for c in clients]
        after = server_rss_mb(server)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    report = {"model": model, "workers": workers, "threads": threads or "torch default", "runs": runs}
    report |= {"rss_mb_before": before, "rss_mb_after": after, "jpeg_bytes": len(body)}
    own = json.loads(bench.read_text()) if bench else None
    for run in runs:
        line = f"{run['clients']} client(s): p50 {run['p50_ms']:.1f} ms, {run['req_per_s']:.1f} req/s"
        line += f", {run['failed']} failed"
        if own:
            row, rate = own["variants"][variant], own.get("throughput", {}).get(variant, {}).get("img_per_s")
            line += f"; x{run['p50_ms'] / row['latency_ms_p50']:.2f} the artifact's p50"
            line += f", {run['req_per_s'] / rate:.0%} of its throughput" if rate else ""
        console.print(line, highlight=False)
    console.print(f"server RSS {before:.0f} MB before, {after:.0f} MB after the runs", highlight=False)
    if out:
        out.write_text(json.dumps(report, indent=1))
    if any(run["failed"] for run in runs):
        raise ServeFailed(f"failed requests: see {log}")


if __name__ == "__main__":
    app()
