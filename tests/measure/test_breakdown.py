"""Time per part: a compiled detector's steps are timed where they run, whatever it calls them."""

import types

import pytest
from torch import nn

from qdet.measure import breakdown as breakdown_module
from qdet.measure.breakdown import breakdown
from qdet.serving import aot_detector

CLOCK = [0.0]  # a fake clock: a step "takes" its time by moving it, exactly (real sleeps overshoot)


def sleep(seconds: float) -> None:
    CLOCK[0] += seconds


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch):
    monkeypatch.setattr(breakdown_module, "time", types.SimpleNamespace(perf_counter=lambda: CLOCK[0]))


class Sleep(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, *args):
        sleep(self.seconds)
        return args


class FakeFeatures(nn.Module):
    """The backbone package (22 ms), then the RPN head package on four levels (2 ms each)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone, self.rpn_head = Sleep(0.022), Sleep(0.002)

    def forward(self, *args):
        self.backbone(*args)
        for _ in range(4):
            self.rpn_head(*args)
        return args


class FakeCompiled(aot_detector.Detector):
    """The compiled detector's steps, each taking a known time; 4 ms outside them (the resize back)."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.transform, self.features, self.proposals = Sleep(0.002), FakeFeatures(), Sleep(0.006)
        self.roi, self.detections = Sleep(0.012), Sleep(0.001)

    def forward(self, images):
        for step in (self.transform, self.features, self.proposals, self.roi, self.detections):
            step(images)
        sleep(0.004)
        return [{}]


def test_a_compiled_detector_is_timed_by_its_own_steps():
    parts = breakdown(FakeCompiled(), [None], rounds=5)
    assert list(parts) == ["transform", "backbone", "rpn_head", "proposals", "roi", "postprocess", "total"]
    want = {
        "transform": 2,
        "backbone": 22,
        "rpn_head": 8,
        "proposals": 6,
        "roi": 12,
        "postprocess": 5,
        "total": 55,
    }
    for key, ms in want.items():
        assert parts[key] == pytest.approx(ms), key
