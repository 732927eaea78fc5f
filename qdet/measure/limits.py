"""How far the int8 backbone runs from the CPU's limit: its multiply-accumulates at the
benchmark's input size (torch's FlopCounterMode on the float backbone: int8 does the same MACs)
over the time the breakdown measured, against a nominal int8 peak from the CPU's vector
instructions, its clock and the threads used.

The nominal peak is a rule, not a measurement, and an upper bound: int8 lanes per instruction x
two vector multiply units per core x clock x threads. A core that runs 512-bit instructions as two
256-bit halves (Zen 4) cannot reach it; without VNNI, accumulating the int8 products takes extra
instructions (vpmaddubsw, then vpmaddwd and vpaddd to widen), which AVX2 kernels amortise over
several products. A virtual machine's /proc/cpuinfo gives the base clock, not the one it runs at.

So the CPU's limit is also measured (:func:`conv_peaks`): one large 3x3 convolution on oneDNN in
fp32 and in int8, the kernels the float runtimes and our int8 artifacts call. Their ratio bounds
what int8 convolutions can gain over a fp32 runtime's on this CPU, whatever runs around them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
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


BEST_CASE_CONV = (256, 256, 40, 64)  # channels in, out, rows, cols of a 3x3 convolution: ~1.5 GMAC


def best_case_convs() -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor], torch.Tensor, float]:
    """(fp32 convolution, int8 convolution + ReLU, the int8 one's output dequantized, MACs) for
    :data:`BEST_CASE_CONV`, channels-last: fp32 by ATen's oneDNN convolution, int8 by
    ``onednn::qconv_pointwise`` (uint8 activations, int8 per-channel weights, ReLU fused into a
    uint8 output), the op Inductor lowers our PT2E convolutions to."""
    cin, cout, rows, cols = BEST_CASE_CONV
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, cin, rows, cols, generator=generator).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, 3, 3, generator=generator) * 0.05).contiguous(
        memory_format=torch.channels_last
    )
    ref = F.relu(F.conv2d(x, w, padding=1))
    x_scale, w_scales = 1.0 / 255, w.abs().amax(dim=(1, 2, 3)) / 127
    out_scale = float(ref.amax()) / 255
    qx = torch.round(x / x_scale).clamp(0, 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)
    qw = torch.round(w / w_scales.view(-1, 1, 1, 1)).clamp(-128, 127).to(torch.int8)
    one = [1, 1]
    packed = torch.ops.onednn.qconv_prepack(qw, w_scales, x_scale, 0, one, one, one, 1, list(qx.shape))
    zero_points = torch.zeros(cout, dtype=torch.long)

    def int8() -> torch.Tensor:
        return torch.ops.onednn.qconv_pointwise(
            qx, x_scale, 0, packed, w_scales, zero_points, None, one, one, one, 1,
            out_scale, 0, None, "relu", [], "",
        )  # fmt: skip

    def fp32() -> torch.Tensor:
        return F.conv2d(x, w, padding=1)

    dequantized = int8().float() * out_scale
    return fp32, int8, dequantized, float(cin * cout * 9 * rows * cols)


def kernel_rates(
    kernels: dict[str, tuple[Callable[[], torch.Tensor], float]], rounds: int = 30
) -> dict[str, float]:
    """GMAC/s of each ``name -> (call, MACs)`` at the threads torch uses now: medians of
    ``rounds`` calls, the kernels interleaved so drift hits them alike, after 3 untimed rounds
    (oneDNN creates its primitives on the first call)."""
    times: dict[str, list[float]] = {name: [] for name in kernels}
    with torch.inference_mode():
        for step in range(rounds + 3):
            for name, (kernel, _) in kernels.items():
                start = time.perf_counter()
                kernel()
                elapsed = time.perf_counter() - start
                if step >= 3:
                    times[name].append(elapsed)
    return {name: kernels[name][1] / statistics.median(t) / 1e9 for name, t in times.items()}


def conv_peaks(rounds: int = 30) -> dict[str, float]:
    """Measured GMAC/s of :func:`best_case_convs` (:func:`kernel_rates`) and int8's ratio to fp32."""
    fp32, int8, _, macs = best_case_convs()
    rate = kernel_rates({"fp32": (fp32, macs), "int8": (int8, macs)}, rounds)
    return {
        "fp32_conv_gmac_per_s": rate["fp32"],
        "int8_conv_gmac_per_s": rate["int8"],
        "int8_over_fp32_conv": rate["int8"] / rate["fp32"],
    }


def backbone_vs_peak(
    model: nn.Module, image: torch.Tensor, timed: dict[str, float], threads: int
) -> dict[str, object]:
    """The int8 backbone's GMAC/s, its share of the best-case int8 convolution measured here
    (:func:`conv_peaks`) and of the nominal peak (left out without a clock), from the int8
    breakdown ``timed`` (its ``backbone``: the eager twin's, or ``backbone.pt2``)."""
    backbone_ms = timed["backbone"]
    gmacs = backbone_gmacs(model, image)
    achieved = gmacs / (backbone_ms / 1e3)
    out: dict[str, object] = {
        "scope": "backbone + FPN",
        "backbone_gmacs": gmacs,
        "backbone_ms": backbone_ms,
        "backbone_gmac_per_s": achieved,
        "best_case_conv": "3x3, {} -> {} channels, {} x {}, channels-last".format(*BEST_CASE_CONV),
    }
    try:
        peaks = conv_peaks()
    except RuntimeError as exc:  # a build or CPU without oneDNN's int8 convolution (an ARM qnnpack setup)
        out["measured_unavailable"] = str(exc).strip().splitlines()[0]
    else:
        out |= {f"measured_{k}": v for k, v in peaks.items()}
        out["share_of_measured_int8_conv"] = achieved / peaks["int8_conv_gmac_per_s"]
    mhz = cpu_mhz()
    if mhz is not None:
        peak, rule = nominal_int8_peak(cpu_flags(), mhz, threads)
        out |= {
            "nominal_int8_peak_gmac_per_s": peak,
            "share_of_nominal_peak": achieved / peak,
            "nominal_peak_rule": rule,
        }
    return out


def limit_line(limit: dict) -> str:
    """One sentence on the int8 backbone against the limits :func:`backbone_vs_peak` recorded, and
    what the measured convolutions bound: no int8 detector here beats a fp32 runtime's
    convolutions by more than their ratio."""
    line = (
        f"int8 {limit['scope']}: {limit['backbone_gmacs']:.2f} GMAC per image in"
        f" {limit['backbone_ms']:.1f} ms = {limit['backbone_gmac_per_s']:.0f} GMAC/s"
    )
    if "share_of_measured_int8_conv" in limit:
        line += (
            f", {limit['share_of_measured_int8_conv']:.0%} of the best-case int8 convolution measured on"
            f" this CPU ({limit['measured_int8_conv_gmac_per_s']:.0f} GMAC/s; fp32"
            f" {limit['measured_fp32_conv_gmac_per_s']:.0f}: int8 convolutions are at most"
            f" x{limit['measured_int8_over_fp32_conv']:.2f} faster than fp32 ones here;"
            f" {limit['best_case_conv']})"
        )
    else:
        line += f"; the best-case convolutions could not be measured: {limit.get('measured_unavailable')}"
    if "share_of_nominal_peak" in limit:
        line += (
            f", {limit['share_of_nominal_peak']:.0%} of the nominal int8 peak"
            f" ({limit['nominal_int8_peak_gmac_per_s']:.0f} GMAC/s: {limit['nominal_peak_rule']}; an upper"
            " bound by rule, at the clock /proc/cpuinfo reports)"
        )
    return line + "."
