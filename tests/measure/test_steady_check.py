"""The independent steady-state check (``qdet/measure/steady_check.py``): which models it finds,
how it loads an OpenVINO spec without qdet, and its agreement arithmetic."""

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from tests.helpers import REPO


@pytest.fixture(scope="module")
def check():
    """The script as a module, its refusal of qdet imports taken back out of the import system
    (it guards the script's own process, not the test's)."""
    spec = importlib.util.spec_from_file_location("steady_check", REPO / "qdet/measure/steady_check.py")
    module = importlib.util.module_from_spec(spec)
    before = list(sys.meta_path)
    spec.loader.exec_module(module)
    sys.meta_path[:] = before
    return module


def test_every_variant_that_loads_without_qdet_is_found(check, tmp_path):
    """convert's variants (a deploy row's spec in a subfolder included), the OpenVINO and ONNX
    Runtime peers and the peers' compiled folders (torch bf16: often the best float, which the
    check must time to compare with the benchmark's ratio against it)."""
    export, peers = tmp_path / "export", tmp_path / "peers"
    variants = {"qat": "qat", "qat_openvino": "deploy/qat/openvino.json", "qat_onnx": "deploy/qat/model.onnx"}
    export.mkdir()
    (export / "variants.json").write_text(json.dumps({"variants": variants}))
    (peers / "float_bf16").mkdir(parents=True)
    (peers / "float_bf16" / "aot_detector.py").write_text("")
    (peers / "ov_int8.json").write_text(json.dumps({"runtime": "openvino", "model": "ov_int8.xml"}))
    (peers / "peers.json").write_text(json.dumps({"skipped": {}}))
    (peers / "ort_int8.onnx").write_bytes(b"")
    found = check.files(export, peers)
    assert found == {
        **{name: export / rel for name, rel in variants.items()},
        "float_bf16": peers / "float_bf16",
        "ov_int8": peers / "ov_int8.json",
        "ort_int8": peers / "ort_int8.onnx",
    }


def test_an_openvino_spec_loads_its_model_from_a_subfolder(check, tmp_path):
    """A deploy row's spec names ``openvino/model.xml`` relative to its own folder."""
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter([3, 4, 5], ov.Type.f32)
    model = ov.Model([ops.relu(image)], [image])
    (tmp_path / "openvino").mkdir()
    ov.save_model(model, str(tmp_path / "openvino" / "model.xml"))
    spec = {"runtime": "openvino", "model": "openvino/model.xml", "config": {"PERFORMANCE_HINT": "LATENCY"}}
    (tmp_path / "openvino.json").write_text(json.dumps(spec))
    run = check.loader(tmp_path / "openvino.json", 1)
    image = torch.linspace(-1, 1, 60).reshape(3, 4, 5)
    out = next(iter(run(image).values()))
    assert np.allclose(out, image.clamp(min=0).numpy())


def test_agreement_compares_the_same_ratios_as_the_benchmark(check):
    bench = {
        "best_float": "float_bf16",
        "best_int8_peer": "ov_int8",
        "variants": {
            "qat": {"size_ratio": 3.6, "speedup_vs_best_float": 1.80, "speedup_vs_best_int8_peer": 1.20},
            "ov_int8": {"speedup_vs_best_float": 1.5},
        },
    }
    rows = check.agreement(bench, {"qat": 25.0, "float_bf16": 45.0, "ov_int8": 31.5})
    assert set(rows) == {"qat vs float_bf16", "qat vs ov_int8"}  # only qdet's int8 rows
    assert rows["qat vs float_bf16"]["independent"] == pytest.approx(1.8)
    assert rows["qat vs float_bf16"]["within"] and rows["qat vs float_bf16"]["difference"] == pytest.approx(0)
    assert rows["qat vs ov_int8"]["independent"] == pytest.approx(1.26)
    assert rows["qat vs ov_int8"]["difference"] == pytest.approx(1.20 / 1.26 - 1)
    assert rows["qat vs ov_int8"]["within"]  # -4.8%
    rows = check.agreement(bench, {"qat": 25.0, "float_bf16": 45.0, "ov_int8": 33.0})
    assert not rows["qat vs ov_int8"]["within"]  # x1.32 here against x1.20: -9.1%
    assert check.agreement(bench, {"qat": 25.0, "ov_int8": 31.5}).keys() == {"qat vs ov_int8"}


def test_the_timed_processes_end_on_their_own(check, monkeypatch):
    """Standard input closed, not killed: a killed AOTInductor loader leaves the folder it
    unpacked in the temp folder."""
    import io

    made = []

    class Child:
        def __init__(self, command, **kwargs):
            self.stdin, self.stdout, self.killed = io.StringIO(), io.StringIO("ready\n[0.01, 0.02]\n"), False
            made.append(self)

        def wait(self, timeout=None):
            return 0

        def kill(self):
            self.killed = True

    monkeypatch.setattr(check.subprocess, "Popen", Child)
    times = check.time_in_turns({"qat": "models/export/qat"}, ["a.ppm"], 2, 1, 2)
    assert times == {"qat": [0.01, 0.02]}
    assert len(made) == 1 and made[0].stdin.closed and not made[0].killed
