"""The results page's speed sections that read the benchmark's steady-state regime, its int8
floor and its throughput rows (:mod:`qdet.measure.floor`, :mod:`qdet.measure.streams`)."""

from __future__ import annotations

from qdet.measure.floor import floor_line
from qdet.measure.variants import RECOMMENDED, label


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
