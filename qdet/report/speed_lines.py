"""The results page's speed sections that read the benchmark's steady-state regime, its int8
floor and its throughput rows (:mod:`qdet.measure.floor`, :mod:`qdet.measure.streams`), and
qdet's int8 as deployed on ONNX Runtime and OpenVINO (:mod:`qdet.peers.deploy`)."""

from __future__ import annotations

from typing import Any

from qdet.measure.floor import floor_line
from qdet.variants.table import DEPLOYED, RECOMMENDED, deployed, int8_peers, label, variant


def num(value: Any, fmt: str) -> str:
    """A figure of a metric file, or ``-`` where it is missing (older files write -1)."""
    return format(value, fmt) if isinstance(value, int | float) and value != -1 else "-"


def regime_lines(benchmark: dict) -> list[str]:
    """How the latencies were timed and the thread rule, or nothing for an older benchmark."""
    regime = benchmark.get("regime")
    if not regime:
        return []
    return [
        f"Timing: {regime['timing']} ({regime['rounds']} rounds x {regime['timed_calls_per_block']} timed "
        f"calls, {regime['warmup_calls']} warm-up calls first). Threads: {regime['thread_rule']}.",
        "",
    ]


def floor_lines(benchmark: dict, champion: str | None) -> list[str]:
    """The int8 floor, the champion (else the recommended int8 row) against it, and each step of
    the int8 breakdown against the floor of the kernels it runs."""
    floor = benchmark.get("floor")
    name = champion if champion in benchmark.get("variants", {}) else RECOMMENDED
    row = benchmark.get("variants", {}).get(name)
    if not floor or not row:
        return ["Not measured by this benchmark."]
    lines = [floor_line(floor, label(name), row), ""]
    parts = floor.get("int8_parts", {})
    if parts:
        lines += ["| int8 step | ms | floor ms | glue ms | x its floor |", "|---|---|---|---|---|"]
        for step, part in parts.items():
            ratio = f"{part['x_floor']:.2f}" if "x_floor" in part else "-"
            lines.append(
                f"| {step} | {part['ms']:.1f} | {part['floor_ms']:.1f} | {part['glue_ms']:.1f} | {ratio} |"
            )
    others = [f"{label(n)} x{r['x_floor']:.2f}" for n, r in benchmark["variants"].items() if "x_floor" in r]
    return (
        [*lines, "", "Every int8 row against the same floor: " + ", ".join(others) + "."] if others else lines
    )


def throughput_lines(benchmark: dict) -> list[str]:
    """Images per second with every core busy, each runtime at its best setting, fastest first."""
    rows = benchmark.get("throughput")
    if not rows:
        return ["Not measured by this benchmark (`benchmark.throughput_seconds: 0`)."]
    lines = ["| variant | img/s | best setting | every setting tried (img/s) |", "|---|---|---|---|"]
    for name, row in sorted(rows.items(), key=lambda item: -item[1]["img_per_s"]):
        tried = "; ".join(f"{k}: {v:.1f}" for k, v in row["tried"].items())
        lines.append(f"| {label(name)} | {row['img_per_s']:.1f} | {row['setting']} | {tried} |")
    return lines


def same_runtime_peer(name: str, names: list[str]) -> str | None:
    """The int8 peer that runs on the same runtime as deploy row ``name`` (OpenVINO's own int8
    for qdet's IR): the same kernels, so what differs is the model."""
    runtime = variant(name).runtime
    return next((n for n in int8_peers(names) if variant(n).runtime == runtime), None)


def deploy_lines(evaluation: dict, benchmark: dict) -> list[str]:
    """qdet's own PTQ/QAT models on ONNX Runtime and OpenVINO: accuracy against the torch artifact
    they were exported from, latency against the same runtime's own int8, throughput and size;
    then the QAT lead over OpenVINO int8 split into model and runtime."""
    rows, speed = [n for n in DEPLOYED if n in evaluation], benchmark.get("variants", {})
    if not rows:
        return ["Not written by this run (the fx engine has no ONNX export)."]
    rates = benchmark.get("throughput", {})
    lines = [
        "| row | test mAP@.5 | vs its torch artifact | p50 ms | p50 / same runtime's int8 | img/s | MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in rows:
        source, peer, row = variant(name).source, same_runtime_peer(name, list(speed)), speed.get(name, {})
        gap = (
            (evaluation[name]["map50"] - evaluation[source]["map50"]) * 100 if source in evaluation else None
        )
        ms, peer_ms = row.get("latency_ms_p50"), speed.get(peer, {}).get("latency_ms_p50")
        ratio = f"{ms / peer_ms:.2f} ({label(peer)})" if ms and peer_ms else "-"
        lines.append(
            f"| {label(name)} | {evaluation[name]['map50']:.3f} | {num(gap, '+.2f')} pt | {num(ms, '.1f')} | "
            f"{ratio} | {num(rates.get(name, {}).get('img_per_s'), '.1f')} | "
            f"{num(row.get('size_mb'), '.1f')} |"
        )
    qat, ir = RECOMMENDED, deployed(RECOMMENDED).get("openvino")
    peer = same_runtime_peer(ir, list(speed)) if ir else None
    ms = {n: speed.get(n, {}).get("latency_ms_p50") for n in (qat, ir, peer)}
    if all(ms.values()):
        lines += [
            "",
            f"Model or runtime? {label(qat)} on qdet's runtime {ms[qat]:.1f} ms; the same model on "
            f"OpenVINO {ms[ir]:.1f} ms (the runtime: x{ms[ir] / ms[qat]:.2f}); {label(peer)} "
            f"{ms[peer]:.1f} ms (the model, same runtime: x{ms[peer] / ms[ir]:.2f}).",
        ]
    return lines
