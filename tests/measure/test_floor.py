"""The int8 floor: MACs per part, best-case rates on a fake clock, the arithmetic, each step of
the breakdown against its own floor."""

import pytest
import torch

from qdet.measure import floor as fl
from qdet.measure.floor import (
    BEST_CASE_MATMUL,
    best_case_matmul,
    best_case_rates,
    floor_line,
    int8_floor,
    measure_floor,
    part_gmacs,
    parts_against_floor,
)

RATES = {"int8_conv_gmac_per_s": 400.0, "int8_matmul_gmac_per_s": 100.0}
GMACS = {"backbone": 6.0, "rpn_head": 0.4, "box_head": 0.45, "box_predictor": 0.05}


def test_the_floor_prices_each_part_at_the_rate_of_its_kind():
    out = int8_floor(GMACS, RATES)
    assert out["parts_ms"] == pytest.approx(
        {"backbone": 15.0, "rpn_head": 1.0, "box_head": 4.5, "box_predictor": 0.5}
    )
    assert out["int8_ms"] == pytest.approx(21.0)
    assert out["conv_gmac"] == pytest.approx(6.4) and out["matmul_gmac"] == pytest.approx(0.5)
    assert "int8_over_bf16_conv" not in out
    with_bf16 = int8_floor(GMACS, {**RATES, "bf16_conv_gmac_per_s": 160.0})
    assert with_bf16["int8_over_bf16_conv"] == pytest.approx(2.5)
    assert "x2.50 faster than a bf16 runtime's" in floor_line(with_bf16, "QAT int8", {"latency_ms_p50": 42.0})
    assert "= 21.0 ms; QAT int8 p50 42.0 ms = x2.00 its floor" in floor_line(
        out, "QAT int8", {"latency_ms_p50": 42.0}
    )


def test_each_breakdown_step_is_set_against_the_floor_of_the_kernels_it_runs():
    aot = {
        "transform": 1.0,
        "backbone": 18.0,
        "rpn_head": 2.0,
        "proposals": 3.0,
        "roi": 7.5,
        "postprocess": 1.0,
        "total": 32.5,
    }
    steps = parts_against_floor(int8_floor(GMACS, RATES), aot)
    assert steps["backbone"] == pytest.approx({"ms": 18.0, "floor_ms": 15.0, "glue_ms": 3.0, "x_floor": 1.2})
    assert steps["roi"]["floor_ms"] == pytest.approx(5.0)  # box head + predictor run in roi.pt2
    assert steps["proposals"] == {"ms": 3.0, "floor_ms": 0.0, "glue_ms": 3.0} and "total" not in steps
    eager = {"backbone": 18.0, "rpn_head": 2.0, "roi_align": 4.0, "box_head": 6.0, "total": 30.0}
    assert parts_against_floor(int8_floor(GMACS, RATES), eager)["box_head"]["floor_ms"] == pytest.approx(5.0)


def test_best_case_rates_come_from_the_clock(monkeypatch):
    """A fake clock: each int8 conv call takes 2 ms, each int8 matmul 4 ms, bf16 conv 5 ms."""
    seconds = {"int8_conv": 0.002, "int8_matmul": 0.004, "bf16_conv": 0.005}
    order = list(seconds)

    class Clock:
        now, calls = 0.0, 0

        def __call__(self):
            name = order[(self.calls // 2) % len(order)]
            self.calls += 1
            if self.calls % 2 == 0:
                self.now += seconds[name]
            return self.now

    monkeypatch.setattr("qdet.measure.limits.time.perf_counter", Clock())
    monkeypatch.setattr(fl, "bf16_support", lambda: None)  # as on a CPU with bf16
    rates = best_case_rates(rounds=4)
    conv_macs = fl.best_case_bf16_conv()[1]
    assert rates["int8_conv_gmac_per_s"] == pytest.approx(conv_macs / 0.002 / 1e9)
    assert rates["int8_matmul_gmac_per_s"] == pytest.approx(best_case_matmul()[3] / 0.004 / 1e9)
    assert rates["bf16_conv_gmac_per_s"] == pytest.approx(conv_macs / 0.005 / 1e9)
    monkeypatch.setattr(fl, "bf16_support", lambda: "no bf16 here")
    monkeypatch.setattr("qdet.measure.limits.time.perf_counter", Clock())
    order.remove("bf16_conv")
    assert "bf16_conv_gmac_per_s" not in best_case_rates(rounds=2)


def test_the_measured_int8_matmul_computes_the_matmul_it_is_timed_for():
    _, dequantized, reference, macs = best_case_matmul()
    rows, cin, cout = BEST_CASE_MATMUL
    assert dequantized.shape == reference.shape == (rows, cout) and macs == rows * cin * cout
    assert (dequantized - reference).abs().mean() / reference.abs().mean() < 0.03


def test_part_macs_are_counted_per_part_and_every_int8_row_gets_its_ratio(monkeypatch):
    from qdet.models.detector import build_detector
    from tests.helpers import TINY_MODEL

    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    images = [torch.rand(3, 96, 128), torch.rand(3, 96, 128)]
    gmacs = part_gmacs(model, images)
    assert set(gmacs) == set(fl.PARTS) and all(v > 0 for v in gmacs.values())
    head = model.roi_heads.box_head
    proposals = TINY_MODEL.rpn_post_nms_top_n_test
    fc = sum(m.in_features * m.out_features for m in head.modules() if isinstance(m, torch.nn.Linear))
    assert gmacs["box_head"] == pytest.approx(fc * proposals / 1e9, rel=0.5)  # up to the proposals kept
    monkeypatch.setattr(fl, "best_case_rates", lambda: RATES)
    rows = {"qat": {"latency_ms_p50": 10.0}, "float_eager": {"latency_ms_p50": 50.0}}
    out = measure_floor(model, images, {"backbone": 5.0, "total": 9.0}, rows)
    assert (
        rows["qat"]["x_floor"] == pytest.approx(10.0 / out["int8_ms"])
        and "x_floor" not in rows["float_eager"]
    )

    def no_kernel():
        raise RuntimeError("onednn::qconv_prepack: no int8 kernel on this CPU")

    monkeypatch.setattr(fl, "best_case_rates", no_kernel)
    rows = {"qat": {"latency_ms_p50": 10.0}}
    out = measure_floor(model, images, {"backbone": 5.0, "total": 9.0}, rows)
    assert out["unavailable"].startswith("onednn::qconv_prepack") and "x_floor" not in rows["qat"]
    assert "could not be measured: onednn::qconv_prepack" in floor_line(out, "QAT int8", rows["qat"])
