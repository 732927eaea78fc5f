"""qdet's own int8 as ONNX QDQ and OpenVINO IR (qdet.peers.deploy): the ranges are qdet's, the
detections are the torch int8 model's, and the shipped loader runs where torch cannot be imported."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper
from PIL import Image
from torchvision.ops import box_iou

from qdet.core.console import console
from qdet.models.detector import build_detector
from qdet.peers import deploy
from qdet.peers.onnx import OrtDetector
from qdet.peers.openvino import OvDetector
from qdet.predict.model import ModelError, load_model, resolve_model
from qdet.quant import fx, pt2e
from qdet.quant.parts import PARTS
from qdet.quant.plan import QuantPlan
from qdet.serving import DEPLOY_META
from tests.helpers import TINY_MODEL

CLASSES = ["a", "b", "c"]
QUANTIZED = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A tiny PT2E PTQ detector whose predictor gives spread scores (no near-ties between
    runtimes), written as a deploy folder with OpenVINO's float ops in f32."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=len(CLASSES)).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(20)
    plan = QuantPlan(list(PARTS), engine="pt2e")
    prepared = pt2e.prepare(copy.deepcopy(model), plan, qat=False)
    images = [torch.rand(3, 96, 128) for _ in range(4)]
    with torch.no_grad():
        for image in images[:3]:
            prepared([image])
    int8 = pt2e.convert(prepared, plan)
    folder = tmp_path_factory.mktemp("deploy") / "ptq"
    files = deploy.write_deploy(pt2e, int8, folder, {"classes": CLASSES, "variant": "ptq"}, 1, "f32")
    return int8, folder, files, images[3]


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray:
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    node = next(n for n in graph.node if n.op_type == "Constant" and n.output[0] == name)
    return numpy_helper.to_array(node.attribute[0].t)


def onnx_input_qparams(graph: onnx.GraphProto, prefix: str) -> list[tuple[float, int]]:
    """(scale, zero point) of the DequantizeLinear feeding each Conv/Gemm under ``prefix``, in
    graph order."""
    producer = {out: n for n in graph.node for out in n.output}
    found = []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm") and node.name.startswith(prefix):
            dq = producer[node.input[0]]
            assert dq.op_type == "DequantizeLinear", node.name
            found.append((float(_constant(graph, dq.input[1])), int(_constant(graph, dq.input[2]))))
    return found


def torch_input_qparams(graph_module: torch.fx.GraphModule) -> list[tuple[float, int]]:
    """(scale, zero point) qdet's observers gave each convolution's and linear's input."""
    found = []
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target in QUANTIZED:
            scale, zero_point = node.args[0].args[1:3]
            found.append((float(np.float32(scale)), int(zero_point)))
    return found


def test_every_quantized_input_holds_qdets_own_scale(deployed):
    """A conv's input scale in the file is the observer's, to the bit: a recalibrated export
    fails. The RPN head runs once per feature level, so its three convolutions repeat."""
    int8, _, files, _ = deployed
    graph = onnx.load(str(files["onnx"])).graph
    for path in PARTS.values():
        ours = torch_input_qparams(int8.get_submodule(path).graph_module)
        exported = onnx_input_qparams(graph, "/" + path.replace(".", "/") + "/")
        assert ours and len(exported) % len(ours) == 0, path
        assert exported == ours * (len(exported) // len(ours)), path


def test_weights_are_stored_as_qdets_int8_values(deployed):
    int8, _, files, _ = deployed
    graph = onnx.load(str(files["onnx"])).graph
    producer = {out: n for n in graph.node for out in n.output}
    conv = next(n for n in graph.node if n.op_type == "Conv" and n.name.startswith("/backbone/"))
    weight = producer[conv.input[1]]
    assert weight.op_type == "DequantizeLinear"
    values = _constant(graph, weight.input[0])
    gm = int8.backbone.graph_module
    first = next(n for n in gm.graph.nodes if n.op == "call_function" and n.target in QUANTIZED)
    dq = first.args[1]  # dequantize_per_channel(int8 weight, scales, zero points, axis, ...)
    ours = getattr(gm, dq.args[0].target)
    assert values.dtype == np.int8 and np.array_equal(values, ours.numpy())
    np.testing.assert_array_equal(_constant(graph, weight.input[1]), getattr(gm, dq.args[1].target).numpy())


def conv_outputs(graph_module: torch.fx.GraphModule, x: torch.Tensor, count: int) -> list[torch.Tensor]:
    """The first ``count`` convolution outputs of a torch int8 part (copied before the in-place
    ReLUs after them)."""
    found: list[torch.Tensor] = []

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if node.op == "call_function" and node.target in QUANTIZED and len(found) < count:
                found.append(out.clone())
            return out

    with torch.no_grad():
        Recorder(graph_module).run(x)
    return found


def test_the_qdq_graph_computes_qdets_int8_convolutions(deployed, tmp_path):
    """ONNX's reference semantics (no graph optimisation) of the first two backbone convolutions
    equal the torch int8 model's to float precision: same quantized input, same int8 weights.
    From the third on, an activation now and then rounds one step apart (ONNX divides by the
    scale, torch multiplies by its inverse): the detections test bounds what that adds up to."""
    int8, _, files, image = deployed
    model = onnx.load(str(files["onnx"]))
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("/backbone/")][:2]
    for conv in convs:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(conv.output[0], onnx.TensorProto.FLOAT, None)
        )
    onnx.save(model, tmp_path / "probe.onnx")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(
        str(tmp_path / "probe.onnx"), options, providers=["CPUExecutionProvider"]
    )
    exported = session.run([c.output[0] for c in convs], {"image": image.numpy()})
    with torch.no_grad():
        batch = int8.transform([image])[0].tensors
    ours = conv_outputs(int8.backbone.graph_module, batch, len(convs))
    for mine, theirs in zip(ours, exported, strict=True):
        torch.testing.assert_close(torch.from_numpy(theirs), mine, rtol=1e-4, atol=1e-4)


def _same_top(reference: dict, other: dict) -> None:
    """The most confident detection is the same: class, box (IoU above 0.9) and score within
    0.02; lower ones may swap places as rounding steps add up through an untrained network."""
    assert len(other["scores"]) > 0 and len(reference["scores"]) > 0
    assert int(other["labels"][0]) == int(reference["labels"][0])
    assert float(box_iou(other["boxes"][:1], reference["boxes"][:1])) > 0.9
    assert abs(float(other["scores"][0]) - float(reference["scores"][0])) <= 0.02


def test_onnx_runtime_and_openvino_detect_what_the_torch_int8_model_does(deployed):
    int8, _, files, image = deployed
    with torch.no_grad():
        (reference,) = int8([image])
    (ort,) = OrtDetector(files["onnx"], 1)([image])
    _same_top(reference, ort)
    (ov,) = OvDetector(files["openvino"], 1)([image])
    _same_top(reference, ov)


def test_the_ir_stores_int8_weights(deployed):
    """Not decompressed to float on the way: the IR's weights take about as much room as the QDQ file's."""
    _, folder, files, _ = deployed
    ir = folder / deploy.IR_FILE
    assert ir.with_suffix(".bin").stat().st_size < 0.5 * 4 * sum(
        p.numel() for p in build_detector("resnet18", TINY_MODEL, num_classes=len(CLASSES)).parameters()
    )
    assert ir.with_suffix(".bin").stat().st_size < 1.2 * files["onnx"].stat().st_size


BLOCKED = """
import sys
sys.modules["torch"] = None  # import torch fails from here on, as in a slim image
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit("torch imported")
sys.path.insert(0, sys.argv[1])
from qdet_deploy import Detector
for runtime in ("onnxruntime", "openvino"):
    found = Detector(sys.argv[1], runtime, threads=1).predict(sys.argv[2], threshold=0.0)
    print(runtime, [(d.label, round(d.score, 3)) for d in found[:3]])
print("torch" in sys.modules and sys.modules["torch"] is not None)
"""


def test_the_shipped_loader_predicts_with_torch_blocked(deployed, tmp_path):
    _, folder, files, image = deployed
    path = tmp_path / "image.png"
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(folder), str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "False"
    (reference,) = OrtDetector(files["onnx"], 1)(
        [torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1) / 255]
    )
    expected = [
        (CLASSES[int(k) - 1], round(float(s), 3))
        for k, s in zip(reference["labels"][:3], reference["scores"][:3], strict=True)
    ]
    assert lines[0] == f"onnxruntime {expected}"
    assert lines[1].startswith("openvino [(")
    meta = json.loads((folder / DEPLOY_META).read_text())
    assert meta["classes"] == CLASSES and meta["openvino_config"]["INFERENCE_PRECISION_HINT"] == "f32"


def test_qdet_predict_runs_the_deploy_folder_and_refuses_an_artifact_for_it(deployed, tmp_path):
    _, folder, _, image = deployed
    for runtime in ("onnxruntime", "openvino"):
        module, meta = load_model(resolve_model(str(folder), runtime=runtime), runtime, 1)
        assert meta["classes"] == CLASSES and len(module([image])[0]["scores"]) > 0
    with pytest.raises(ModelError, match="runs a deploy folder"):
        resolve_model(str(tmp_path), runtime="openvino")
    with pytest.raises(ModelError, match="--runtime onnx: one of torch, onnxruntime, openvino"):
        resolve_model(str(folder), runtime="onnx")


def test_an_engine_without_qdq_export_writes_no_deploy_rows(tmp_path):
    model = build_detector("resnet18", TINY_MODEL, num_classes=len(CLASSES)).eval()
    with console.capture() as said:
        assert deploy.write_deploys(fx, {"ptq": model}, tmp_path, {"ptq": {}}, 1, "f32") == {}
    assert "no ONNX or OpenVINO deploy files: the fx engine's int8 is not exported" in said.get()


def test_the_shipped_loader_reads_the_files_convert_writes():
    """qdet_deploy.py imports nothing of qdet: its file names are spelled twice, checked here."""
    from qdet.serving import qdet_deploy

    assert qdet_deploy.META == DEPLOY_META
