"""The peers: ONNX export and ORT int8, OpenVINO specs, torch bf16, and the CPU check that leaves
the bf16 ones out where the CPU would only emulate bf16."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from qdet.core.cpu import bf16_support, cpu_flags, cpu_info
from qdet.models.detector import build_detector
from qdet.models.onnx import export_onnx
from qdet.peers import onnx as ort_peers
from qdet.peers import openvino, peer_files, write_manifest
from qdet.quant.aot import Compiled, compile_module
from qdet.quant.parts import QuantError
from qdet.variants.artifacts import artifact_size, load_variant
from tests.helpers import TINY_MODEL

IMAGE_SIZE = (3, 96, 128)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny float detector whose predictor gives spread scores (no near-ties for NMS or top-k
    to break differently between runtimes), its ONNX export and a few calibration images."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(20)
    folder = tmp_path_factory.mktemp("peers")
    images = [(torch.rand(*IMAGE_SIZE), {}) for _ in range(4)]
    export_onnx(model, folder / "fp32.onnx", images[0][0])
    return model, folder, images


def _matches(reference: dict, other: dict, atol: float) -> None:
    assert len(other["boxes"]) == len(reference["boxes"]) > 0
    assert torch.equal(other["labels"].long(), reference["labels"])
    torch.testing.assert_close(other["scores"], reference["scores"], atol=atol, rtol=0)
    torch.testing.assert_close(other["boxes"], reference["boxes"], atol=atol * 100, rtol=0)


def test_ort_and_openvino_fp32_match_torch_float_on_an_image(exported):
    """Tolerance: scores within 1e-3 and boxes within 0.1 px (fp32 kernels sum in other orders)."""
    model, folder, images = exported
    image = images[1][0]
    with torch.no_grad():
        (reference,) = model([image])
    (ort,) = ort_peers.OrtDetector(folder / "fp32.onnx", 1)([image])
    _matches(reference, ort, 1e-3)
    openvino.write_spec(folder / "ov_fp32.json", folder / "fp32.onnx", "f32", 1, "onnx")
    (ov,) = load_variant("ov_fp32", folder / "ov_fp32.json", 1)([image])
    _matches(reference, ov, 1e-3)


def test_ort_int8_holds_int8_qdq_on_every_convolution(exported):
    _, folder, images = exported
    ort_peers.quantize_onnx(folder / "fp32.onnx", folder / "int8.onnx", images, 4, "minmax")
    graph = onnx.load(str(folder / "int8.onnx")).graph
    producer = {out: node for node in graph.node for out in node.output}
    initializers = {i.name: i for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) > 20  # backbone, FPN, RPN head
    for conv in convs:
        activation, weight = (producer[name] for name in conv.input[:2])
        assert activation.op_type == weight.op_type == "DequantizeLinear", conv.name
        stored = initializers[weight.input[0]]
        assert stored.data_type == onnx.TensorProto.INT8, conv.name
    # only the parts qdet quantizes run int8 ops: box decoding, anchors and NMS offsets keep float
    # coordinates (glue outside them may still read a dequantized tensor's shape or values)
    parts = ("/backbone/", "/rpn/head/", "/roi_heads/box_head/", "/roi_heads/box_predictor/")
    quantized = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    fed = [n for n in graph.node if any(producer.get(i) in quantized for i in n.input)]
    outside = [n.name for n in fed if n.op_type in ort_peers.ORT_INT8_OPS and not n.name.startswith(parts)]
    assert fed and not outside, outside[:5]


def test_ort_calibration_keeps_the_method_that_scores_best_and_cleans_up(exported):
    _, folder, images = exported
    scores = {"minmax": 0.5, "entropy": 0.7, "percentile": 0.6}
    seen = []

    def score(detector, dataset) -> float:
        seen.append(len(dataset))
        return scores[ort_peers.CALIBRATION[len(seen) - 1]]

    held_out = _Split(images)
    method, got, _ = ort_peers.choose_calibration(
        folder / "fp32.onnx", folder / "chosen.onnx", held_out, 2, score, 1
    )
    assert method == "entropy" and got == scores
    assert seen == [2, 2, 2]  # scored on the two images after the two calibration ones
    ort_peers.quantize_onnx(folder / "fp32.onnx", folder / "entropy.onnx", held_out, 2, "entropy")
    assert (folder / "chosen.onnx").read_bytes() == (folder / "entropy.onnx").read_bytes()
    assert not list(folder.glob("chosen.*.onnx"))


def test_a_calibration_method_ort_fails_with_is_reported_and_left_out(exported, monkeypatch):
    _, folder, images = exported
    real = ort_peers.quantize_onnx

    def quantize(fp32, int8, dataset, count, method):
        if method == "minmax":
            raise ValueError("zero-size array to reduction operation fmax which has no identity\ndetail")
        return real(fp32, int8, dataset, count, method)

    monkeypatch.setattr(ort_peers, "quantize_onnx", quantize)
    method, got, _ = ort_peers.choose_calibration(
        folder / "fp32.onnx", folder / "survivor.onnx", _Split(images), 2, lambda d, s: 0.5, 1
    )
    assert method == "entropy"  # the first that worked, on a tie
    assert got["minmax"] == "ORT failed: zero-size array to reduction operation fmax which has no identity"
    monkeypatch.setattr(ort_peers, "quantize_onnx", lambda *a: (_ for _ in ()).throw(ValueError("no")))
    with pytest.raises(QuantError, match="could not quantize .*fp32.onnx with any calibration method"):
        ort_peers.choose_calibration(folder / "fp32.onnx", folder / "none.onnx", _Split(images), 2, None, 1)


class _Split:
    """A dataset of the calibration images (records stand in for the images' index)."""

    def __init__(self, items: list) -> None:
        self.items, self.records, self.classes = items, list(range(len(items))), ["a", "b"]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[self.records[i]]


def test_openvino_spec_records_the_precision_the_compiled_model_reports(exported, monkeypatch):
    _, folder, _ = exported
    assert openvino.write_spec(folder / "ov.json", folder / "fp32.onnx", "f32", 1, "onnx") == "f32"
    spec = json.loads((folder / "ov.json").read_text())
    assert spec["config"]["INFERENCE_PRECISION_HINT"] == "f32" and spec["model"] == "fp32.onnx"
    assert artifact_size(folder / "ov.json") > (folder / "fp32.onnx").stat().st_size
    # the precision is read back from the compiled model, not copied from the hint
    monkeypatch.setattr(openvino, "reported_precision", lambda compiled: "f32 (as reported)")
    reported = openvino.write_spec(folder / "ov2.json", folder / "fp32.onnx", "bf16", 1, "onnx")
    assert reported == "f32 (as reported)"


def test_bf16_is_left_out_with_a_note_on_a_cpu_without_bf16(tmp_path):
    note = bf16_support({"avx2", "avx512f"})
    assert note is not None and "avx512_bf16" in note and "emulated" in note
    assert bf16_support({"avx2", "amx_bf16"}) is None
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512_bf16"}
    assert cpu_info(info)["model name"] == "Some CPU"
    assert cpu_info(tmp_path / "absent") == {}


def test_manifest_lists_built_peers_and_why_others_were_left_out(tmp_path):
    write_manifest(tmp_path, {"ort_fp32": tmp_path / "ort_fp32.onnx"}, {"ov_bf16": "no bf16"}, {"x": 1})
    assert peer_files(tmp_path) == {"ort_fp32": tmp_path / "ort_fp32.onnx"}
    assert json.loads((tmp_path / "peers.json").read_text())["skipped"] == {"ov_bf16": "no bf16"}


@pytest.mark.slow  # one AOTInductor compile: ~1 min on 2 cores
def test_float_bf16_part_computes_in_bf16_and_stays_close_to_fp32(tmp_path):
    """Compiled under autocast even on a CPU that emulates bf16 (correctness, not speed); the
    outputs come back as fp32 within bf16's precision (8 bits of mantissa)."""
    import zipfile

    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    x = torch.rand(1, 3, 96, 128)
    auto = torch.export.Dim.AUTO
    compile_module(
        Compiled(model.backbone), (x,), ({2: auto, 3: auto},), tmp_path / "backbone.pt2", bf16=True
    )
    with zipfile.ZipFile(tmp_path / "backbone.pt2") as package:
        code = "".join(package.read(n).decode() for n in package.namelist() if n.endswith(".cpp"))
    assert "bfloat16" in code
    runner = torch._inductor.aoti_load_package(str(tmp_path / "backbone.pt2"))
    with torch.no_grad():
        reference = model.backbone(x)
        out = runner(x)
    for value, got in zip(reference.values(), out, strict=True):  # Compiled returns the levels in order
        assert got.dtype == torch.float32
        scale = value.abs().max().item()
        assert np.allclose(got.numpy(), value.numpy(), atol=0.05 * scale)


def test_nncf_quantizes_only_the_parts_qdet_quantizes(exported):
    """OpenVINO's own int8 route works on the exported detector (no ``If`` node to trip NNCF) and
    leaves the box decoding, anchors and NMS float, as qdet does."""
    import openvino as ov

    _, folder, images = exported
    seconds, error = openvino.nncf_quantize(folder / "fp32.onnx", folder / "nncf.xml", images, 4)
    assert error is None and seconds > 0
    model = ov.Core().read_model(str(folder / "nncf.xml"))
    users = {
        target.get_node()
        for op in model.get_ops()
        if op.get_type_name() == "FakeQuantize"
        for target in op.output(0).get_target_inputs()
    }
    computing = [u.get_friendly_name() for u in users if u.get_type_name() not in ("ShapeOf", "FakeQuantize")]
    parts = ("/backbone/", "/rpn/head/", "/roi_heads/box_head/", "/roi_heads/box_predictor/")
    assert any(n.startswith("/rpn/head/") for n in computing) and any("box_predictor" in n for n in computing)
    assert computing and all(n.startswith(parts) for n in computing), [
        n for n in computing if not n.startswith(parts)
    ]


def test_nncf_failure_is_one_line_and_leaves_no_model(exported, monkeypatch):
    import nncf
    import nncf.errors

    _, folder, images = exported

    def fail(*args, **kwargs):
        raise nncf.errors.InternalError("Could not find a node Unsqueeze_2180 in NNCFGraph!\nmore")

    monkeypatch.setattr(nncf, "quantize", fail)
    _, error = openvino.nncf_quantize(folder / "fp32.onnx", folder / "failed.xml", images, 4)
    assert error == "nncf.errors.InternalError: Could not find a node Unsqueeze_2180 in NNCFGraph!"
    assert not (folder / "failed.xml").exists()
