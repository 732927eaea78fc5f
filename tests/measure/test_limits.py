"""The int8 backbone against the CPU's nominal peak: MACs counted on the real backbone, the peak
by the stated rule from the widest int8 instructions the CPU has."""

import pytest
import torch

from qdet.measure.limits import (
    BEST_CASE_CONV,
    backbone_gmacs,
    backbone_vs_peak,
    best_case_convs,
    conv_peaks,
    cpu_mhz,
    limit_line,
    nominal_int8_peak,
)


def _tiny_detector():
    from torchvision.models.detection import FasterRCNN

    class Body(torch.nn.Module):  # one 3x3 conv, 3 -> 8 channels, stride 1
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)

        def forward(self, x):
            return {"0": self.conv(x)}

    class Backbone(torch.nn.Module):
        out_channels = 8

        def __init__(self):
            super().__init__()
            self.body = Body()

        def forward(self, x):
            return self.body(x)

    return FasterRCNN(Backbone(), num_classes=2, min_size=64, max_size=64)


def test_backbone_macs_are_counted_at_the_size_after_the_transform():
    image = torch.rand(3, 32, 32)  # resized to 64 x 64 by the transform
    assert backbone_gmacs(_tiny_detector(), image) == pytest.approx(64 * 64 * 8 * 3 * 9 / 1e9)


def test_a_cpu_without_onednn_int8_convolutions_gets_the_reason_not_a_traceback(monkeypatch):
    def no_kernel(rounds=30):
        raise NotImplementedError("onednn::qconv_prepack: no int8 kernel on this CPU\nmore detail")

    monkeypatch.setattr("qdet.measure.limits.conv_peaks", no_kernel)
    monkeypatch.setattr("qdet.measure.limits.cpu_mhz", lambda: None)  # and no clock either
    limit = backbone_vs_peak(_tiny_detector(), torch.rand(3, 32, 32), {"backbone": 2.0}, 2)
    assert limit["measured_unavailable"] == "onednn::qconv_prepack: no int8 kernel on this CPU"
    assert "share_of_measured_int8_conv" not in limit and "share_of_nominal_peak" not in limit
    line = limit_line(limit)
    assert line.startswith("int8 backbone + FPN: 0.00 GMAC per image in 2.0 ms")
    assert "could not be measured: onednn::qconv_prepack: no int8 kernel on this CPU." in line


def test_nominal_peak_takes_the_widest_int8_instructions():
    vnni, rule = nominal_int8_peak({"avx2", "avx512_vnni"}, 3000.0, 2)
    assert vnni == pytest.approx(64 * 2 * 3.0 * 2) and rule.startswith("avx512_vnni: 64 int8 MACs")
    avx2, _ = nominal_int8_peak({"avx2"}, 3000.0, 2)
    assert avx2 == pytest.approx(vnni / 2)


def test_the_clock_comes_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu MHz\t\t: 2445.406\nflags\t: avx2\n")
    assert cpu_mhz(info) == pytest.approx(2445.406)
    info.write_text("processor\t: 0\n")
    assert cpu_mhz(info) is None


def test_the_measured_int8_convolution_computes_the_convolution_it_is_timed_for():
    fp32, int8, dequantized, macs = best_case_convs()
    reference = torch.relu(fp32())
    assert dequantized.shape == reference.shape == (1, BEST_CASE_CONV[1], *BEST_CASE_CONV[2:])
    assert macs == BEST_CASE_CONV[0] * BEST_CASE_CONV[1] * 9 * BEST_CASE_CONV[2] * BEST_CASE_CONV[3]
    error = (dequantized - reference).abs().mean() / reference.abs().mean()
    assert error < 0.03  # uint8 output of 255 levels: about 1% here


def test_conv_peaks_time_both_convolutions_and_give_their_ratio(monkeypatch):
    slow = {"fp32": 0.004, "int8": 0.001}  # seconds a call takes, as this fake clock says

    class Clock:
        now, calls = 0.0, 0

        def __call__(self):
            name = ("fp32", "int8")[(self.calls // 2) % 2]  # start/stop pairs, fp32 then int8
            self.calls += 1
            if self.calls % 2 == 0:
                self.now += slow[name]
            return self.now

    monkeypatch.setattr("qdet.measure.limits.time.perf_counter", Clock())
    peaks = conv_peaks(rounds=5)
    macs = best_case_convs()[3]
    assert peaks["fp32_conv_gmac_per_s"] == pytest.approx(macs / 0.004 / 1e9)
    assert peaks["int8_conv_gmac_per_s"] == pytest.approx(macs / 0.001 / 1e9)
    assert peaks["int8_over_fp32_conv"] == pytest.approx(4.0)
