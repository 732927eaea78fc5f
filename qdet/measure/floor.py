"""The int8 floor: how fast this detector could run on this CPU if nothing but its int8 kernels
took time. Each quantized part's convolutions and matmuls are counted (torch's FlopCounterMode
on the float model, on the benchmark's images: int8 does the same MACs) and priced at the
best-case int8 rate measured here for its kind, a large convolution (:mod:`qdet.measure.limits`)
or a large matmul, both on the oneDNN ops our PT2E artifacts lower to. ``p50 / floor`` then
says how much of a variant's time is glue (transform, proposals, RoI gathering, decoding,
Python) and kernels running below their best case; each part is set against its own floor.

Where the CPU computes bf16, the best-case bf16 convolution is measured as well: the ratio of
the two rates bounds what any int8 detector can gain over a bf16 runtime's convolutions here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from qdet.core.cpu import bf16_support
from qdet.measure.limits import BEST_CASE_CONV, best_case_convs, kernel_rates
from qdet.variants.table import variant

PARTS = {  # quantized part -> its module in a torchvision detector, and the kind of its MACs
    "backbone": ("backbone", "conv"),
    "rpn_head": ("rpn.head", "conv"),
    "box_head": ("roi_heads.box_head", "matmul"),
    "box_predictor": ("roi_heads.box_predictor", "matmul"),
}
BREAKDOWN_STEP = {  # the breakdown's step that runs each part (AOT packages; FX's eager twin)
    "backbone": ("backbone",),
    "rpn_head": ("rpn_head",),
    "box_head": ("roi", "box_head"),
    "box_predictor": ("roi", "box_head"),
}
BEST_CASE_MATMUL = (1024, 4096, 1024)  # rows, input features, output features: ~4.3 GMAC


def module_gmacs(model: nn.Module, images: list[torch.Tensor], names: list[str]) -> dict[str, float]:
    """Giga multiply-accumulates per image of each module in ``names`` (full paths), averaged
    over ``images`` (the box head's count follows the proposals each image gets)."""
    totals = dict.fromkeys(names, 0.0)
    model.eval()
    with torch.inference_mode():
        for image in images:
            with FlopCounterMode(display=False) as counter:
                model([image])
            counts = {k.partition(".")[2]: sum(ops.values()) for k, ops in counter.get_flop_counts().items()}
            for name in names:
                totals[name] += counts.get(name, 0) / 2 / 1e9
    return {name: total / len(images) for name, total in totals.items()}


def part_gmacs(model: nn.Module, images: list[torch.Tensor]) -> dict[str, float]:
    """Giga multiply-accumulates per image of each part in :data:`PARTS`."""
    by_path = module_gmacs(model, images, [path for path, _ in PARTS.values()])
    return {part: by_path[path] for part, (path, _) in PARTS.items()}


def best_case_matmul() -> tuple[Callable[[], torch.Tensor], torch.Tensor, torch.Tensor, float]:
    """(int8 matmul, its output dequantized, the fp32 reference, MACs) for
    :data:`BEST_CASE_MATMUL`: ``onednn::qlinear_pointwise`` with uint8 activations and int8
    per-channel weights, fp32 out, the op Inductor lowers our PT2E linears to."""
    rows, cin, cout = BEST_CASE_MATMUL
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(rows, cin, generator=generator)
    w = torch.randn(cout, cin, generator=generator) * 0.05
    x_scale, w_scales = 1.0 / 255, w.abs().amax(dim=1) / 127
    qx = torch.round(x / x_scale).clamp(0, 255).to(torch.uint8)
    qw = torch.round(w / w_scales.view(-1, 1)).clamp(-128, 127).to(torch.int8)
    packed = torch.ops.onednn.qlinear_prepack(qw, [rows, cin])
    zero_points = torch.zeros(cout, dtype=torch.long)

    def int8() -> torch.Tensor:
        return torch.ops.onednn.qlinear_pointwise(
            qx, x_scale, 0, packed, w_scales, zero_points, None, 1.0, 0, torch.float32, "none", [], ""
        )

    return int8, int8(), x @ w.t(), float(rows * cin * cout)


def best_case_bf16_conv() -> tuple[Callable[[], torch.Tensor], float]:
    """(the :data:`BEST_CASE_CONV` convolution in bf16, channels-last, MACs)."""
    cin, cout, rows, cols = BEST_CASE_CONV
    x = torch.rand(1, cin, rows, cols).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, 3, 3) * 0.05).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    return (lambda: F.conv2d(x, w, padding=1)), float(cin * cout * 9 * rows * cols)


def best_case_rates(rounds: int = 30) -> dict[str, float]:
    """GMAC/s of the best-case int8 convolution and matmul, and of the bf16 convolution where
    the CPU computes bf16 natively (left out elsewhere: emulated bf16 bounds nothing)."""
    _, int8_conv, _, conv_macs = best_case_convs()
    int8_matmul, _, _, matmul_macs = best_case_matmul()
    kernels = {"int8_conv": (int8_conv, conv_macs), "int8_matmul": (int8_matmul, matmul_macs)}
    if bf16_support() is None:
        kernels["bf16_conv"] = best_case_bf16_conv()
    return {f"{name}_gmac_per_s": rate for name, rate in kernel_rates(kernels, rounds).items()}


def int8_floor(gmacs: dict[str, float], rates: dict[str, float]) -> dict[str, object]:
    """Milliseconds each part would take at the best-case int8 rate of its kind, and in all."""
    rate = {"conv": rates["int8_conv_gmac_per_s"], "matmul": rates["int8_matmul_gmac_per_s"]}
    parts = {part: gmacs[part] / rate[PARTS[part][1]] * 1e3 for part in PARTS}
    out: dict[str, object] = {
        "int8_ms": sum(parts.values()),
        "gmac": sum(gmacs.values()),
        **{f"{kind}_gmac": sum(g for p, g in gmacs.items() if PARTS[p][1] == kind) for kind in rate},
        "parts_gmac": gmacs,
        "parts_ms": parts,
        **rates,
    }
    if "bf16_conv_gmac_per_s" in rates:
        out["int8_over_bf16_conv"] = rates["int8_conv_gmac_per_s"] / rates["bf16_conv_gmac_per_s"]
    return out


def parts_against_floor(floor: dict, breakdown: dict[str, float]) -> dict[str, dict[str, float]]:
    """Each step of the int8 breakdown against the floor of the parts it runs: ``x_floor`` is its
    time over that floor; steps with no int8 kernel (transform, proposals, post-processing) have
    a floor of 0 and are all glue."""
    floors = dict.fromkeys(k for k in breakdown if k != "total")
    for part, steps in BREAKDOWN_STEP.items():
        step = next((s for s in steps if s in breakdown), None)
        if step is not None:
            floors[step] = (floors[step] or 0.0) + floor["parts_ms"][part]
    out = {}
    for step, ms in ((k, v) for k, v in breakdown.items() if k != "total"):
        low = floors[step] or 0.0
        out[step] = {"ms": ms, "floor_ms": low, "glue_ms": ms - low}
        if low:
            out[step]["x_floor"] = ms / low
    return out


def measure_floor(
    eager: nn.Module, images: list[torch.Tensor], int8_breakdown: dict[str, float], rows: dict[str, dict]
) -> dict[str, object]:
    """The floor of ``eager``'s parts on ``images`` at the rates measured now, each step of the
    int8 breakdown against it (``int8_parts``), and ``x_floor`` (p50 over the floor) added to
    every int8 row of the benchmark's ``rows``, peers included: they run the same MACs."""
    gmacs = part_gmacs(eager, images)
    try:
        rates = best_case_rates()
    except (RuntimeError, NotImplementedError) as exc:  # no oneDNN int8 kernels (an ARM qnnpack build)
        return {
            "gmac": sum(gmacs.values()),
            "parts_gmac": gmacs,
            "unavailable": str(exc).strip().splitlines()[0],
        }
    floor = int8_floor(gmacs, rates)
    floor["int8_parts"] = parts_against_floor(floor, int8_breakdown)
    for name, row in rows.items():
        if variant(name).kind == "int8":
            row["x_floor"] = row["latency_ms_p50"] / floor["int8_ms"]
    return floor


def floor_line(floor: dict, name: str, row: dict) -> str:
    """One sentence for the console and the results page: the floor, and ``name``'s ``row``
    against it."""
    p50_ms = row["latency_ms_p50"]
    if "unavailable" in floor:
        why = floor["unavailable"]
        return (
            f"int8 floor: {floor['gmac']:.2f} GMAC per image; the best-case int8 rates could not be "
            f"measured: {why}."
        )
    line = (
        f"int8 floor: {floor['gmac']:.2f} GMAC per image ({floor['conv_gmac']:.2f} in convolutions at "
        f"{floor['int8_conv_gmac_per_s']:.0f} GMAC/s, {floor['matmul_gmac']:.2f} in matmuls at "
        f"{floor['int8_matmul_gmac_per_s']:.0f} GMAC/s, the best-case int8 rates measured here) = "
        f"{floor['int8_ms']:.1f} ms; {name} p50 {p50_ms:.1f} ms = x{p50_ms / floor['int8_ms']:.2f} its floor"
    )
    if "int8_over_bf16_conv" in floor:
        line += (
            f"; the best-case bf16 convolution runs at {floor['bf16_conv_gmac_per_s']:.0f} GMAC/s: int8 "
            f"convolutions are at most x{floor['int8_over_bf16_conv']:.2f} faster than a bf16 runtime's here"
        )
    return line + "."
