"""How far the int8 backbone runs from the CPU's limit: its multiply-accumulates at the
benchmark's input size (torch's FlopCounterMode on the float backbone: int8 does the same MACs)
over the time the breakdown measured, against a nominal int8 peak from the CPU's vector
instructions, its clock and the threads used.

The nominal peak is a rule, not a measurement, and an upper bound: int8 lanes per instruction x
two vector multiply units per core x clock x threads. A core that runs 512-bit instructions as two
256-bit halves (Zen 4) cannot reach it; without VNNI, accumulating the int8 products takes extra
instructions (vpmaddubsw, then vpmaddwd and vpaddd to widen), which AVX2 kernels amortise over
several products.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from qdet.core.cpu import CPUINFO, cpu_flags, cpu_info

UNITS = 2  # vector multiply units per core, assumed
INT8_LANES = (  # (cpuinfo flag, int8 multiply-accumulates per instruction), the widest first
    ("avx512_vnni", 64),
    ("avx_vnni", 32),
    ("avx2", 32),
)


def backbone_gmacs(model: nn.Module, image: torch.Tensor) -> float:
    """Giga multiply-accumulates of the backbone (with its FPN) for one image after the
    detector's own transform (resize, padding)."""
    with torch.inference_mode():
        batch, _ = model.eval().transform([image])
        with FlopCounterMode(display=False) as counter:
            model.backbone(batch.tensors)
    return counter.get_total_flops() / 2 / 1e9


def cpu_mhz(cpuinfo: Path = CPUINFO) -> float | None:
    """The clock /proc/cpuinfo reports (virtual machines expose no maximum): None if absent."""
    mhz = cpu_info(cpuinfo).get("cpu MHz")
    return float(mhz) if mhz else None


def nominal_int8_peak(flags: set[str], mhz: float, threads: int) -> tuple[float, str]:
    """(GMAC/s, the rule that gave it) for the widest int8 instructions the CPU has."""
    flag, lanes = next(((f, n) for f, n in INT8_LANES if f in flags), ("none", 16))
    gmacs = lanes * UNITS * mhz / 1e3 * threads
    rule = f"{flag}: {lanes} int8 MACs per instruction x {UNITS} units x {mhz:.0f} MHz x {threads} threads"
    return gmacs, rule


def backbone_vs_peak(
    model: nn.Module, image: torch.Tensor, timed: dict[str, float], threads: int
) -> dict[str, object]:
    """The int8 backbone's GMAC/s and its share of the nominal peak (``{}`` without a clock),
    from the int8 breakdown ``timed`` (its ``backbone``: the eager twin's, or ``backbone.pt2``)."""
    mhz = cpu_mhz()
    if mhz is None:
        return {}
    backbone_ms = timed["backbone"]
    gmacs = backbone_gmacs(model, image)
    peak, rule = nominal_int8_peak(cpu_flags(), mhz, threads)
    achieved = gmacs / (backbone_ms / 1e3)
    return {
        "scope": "backbone + FPN",
        "backbone_gmacs": gmacs,
        "backbone_ms": backbone_ms,
        "backbone_gmac_per_s": achieved,
        "nominal_int8_peak_gmac_per_s": peak,
        "share_of_nominal_peak": achieved / peak,
        "nominal_peak_rule": rule,
    }
