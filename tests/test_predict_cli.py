"""qdet-predict runs an artifact on images; it must not drag in the training code."""

import subprocess
import sys

import pytest
import torch
from PIL import Image

TRAINING = ("qdet.training", "qdet.pipeline.stage", "qdet.quant", "qdet.tracking")


def test_predict_cli_imports_none_of_the_training_code():
    code = "import sys, qdet.predict.cli; print(' '.join(m for m in sys.modules if m.startswith('qdet')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "qdet.predict.predictor" in loaded
    assert not [m for m in loaded if m.startswith(TRAINING)], loaded


def test_inputs_are_checked_before_the_model_loads(tmp_path):
    from qdet.predict.predictor import InputError, check_inputs

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures")
    (tmp_path / "ok").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ok" / "a.png")
    with pytest.raises(InputError) as caught:
        check_inputs([tmp_path / "missing.jpg", tmp_path / "empty", tmp_path / "notes", tmp_path / "ok"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert lines[0] == f"{tmp_path / 'missing.jpg'}: no such file or folder"
    assert lines[1].startswith(f"{tmp_path / 'empty'}: no image or video inside")
    assert lines[2].startswith(f"{tmp_path / 'notes'}: no image or video inside")
    assert check_inputs([tmp_path / "ok"]) == [tmp_path / "ok" / "a.png"]


def test_a_missing_input_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "qdet.predict.cli", str(tmp_path / "no-model.ts"), str(tmp_path / "x.jpg"),
         "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'x.jpg'}: no such file or folder" in done.stderr
    assert "model file not found" not in done.stderr  # the inputs were checked first
    assert not out.exists()


class _Slowing:
    """A model whose first calls are slow, as TorchScript's profiling runs are, on a fake clock."""

    def __init__(self, first: list[float], steady: float) -> None:
        self.times, self.steady, self.calls, self.now = list(first), steady, 0, 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self, images):
        self.calls += 1
        self.now += self.times.pop(0) if self.times else self.steady
        return [{}]


def test_warm_up_lasts_until_two_calls_agree():
    from qdet.predict.predictor import Predictor

    predictor = Predictor.__new__(Predictor)
    predictor.module = slowing = _Slowing([0.3, 0.15], 0.02)
    calls = predictor.warm_up(torch.zeros(3, 4, 4), clock=slowing.clock)
    assert calls == 4 and slowing.calls == 4  # 0.3, 0.15, 0.02, 0.02: steady at the 4th
    predictor.module = slowing = _Slowing([], 0.02)
    assert predictor.warm_up(torch.zeros(3, 4, 4), clock=slowing.clock) == 2
    predictor.module = slowing = _Slowing([0.020, 0.0225, 0.030], 0.1)  # 12% apart, then 33%, then far
    assert predictor.warm_up(torch.zeros(3, 4, 4), clock=slowing.clock, most=3) == 3  # never two within 10%
    predictor.module = slowing = _Slowing([0.020, 0.0218], 0.1)  # 9% apart: steady at the 2nd
    assert predictor.warm_up(torch.zeros(3, 4, 4), clock=slowing.clock) == 2


def test_summary_gives_p50_and_p90_of_what_was_timed(tmp_path):
    from qdet.predict.cli import summary
    from qdet.predict.predictor import PredictReport

    report = PredictReport(
        images=10, detections=3, seconds=1.0, latencies_ms=[float(v) for v in range(1, 11)]
    )
    line = summary(report, 0.5, 3, tmp_path)
    assert "p50 5.5 ms, p90 9.1 ms" in line and "after 3 warm-up calls" in line and "10 images" in line
    one = summary(PredictReport(images=1, seconds=0.08, latencies_ms=[80.0]), 0.5, 3, tmp_path)
    assert "p50 80.0 ms, p90 80.0 ms" in one
