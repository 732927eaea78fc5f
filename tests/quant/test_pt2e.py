"""The PT2E engine on a tiny detector: capture, PTQ, QAT controls, conversion, sensitivity."""

import copy

import pytest
import torch

from qdet.models.detector import build_detector
from qdet.quant import pt2e
from qdet.quant.engines import restore
from qdet.quant.parts import PARTS, QuantError, get_part
from qdet.quant.plan import QuantPlan
from qdet.quant.pt2e.diagnostics import _sqnr_db as sqnr_db
from qdet.quant.sensitivity import InputRecorder
from tests.helpers import TINY_MODEL

ALL = list(PARTS)
IMAGES = [torch.rand(3, 96, 128) for _ in range(3)]


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    return build_detector("resnet18", TINY_MODEL, num_classes=3).eval()


@pytest.fixture(scope="module")
def calibrated(float_model):
    plan = QuantPlan(ALL, engine="pt2e")
    prepared = pt2e.prepare(copy.deepcopy(float_model), plan, qat=False)
    recorder = InputRecorder(float_model, plan.parts, limit=2)
    with torch.no_grad():
        for image in IMAGES:
            prepared([image])
            float_model([image])
    recorder.remove()
    return plan, prepared, pt2e.convert(prepared, plan), recorder.inputs


def test_shared_relu_of_resnet_blocks_is_split(float_model):
    """torchvision's BasicBlock calls one ReLU twice: without the split the quantizer stops
    with 'Input partition has more than one output node'."""
    inputs = pt2e.capture_inputs(float_model, "backbone")
    exported = torch.export.export(float_model.backbone, inputs, dynamic_shapes=pt2e.dynamic_shapes(inputs))
    assert pt2e.split_shared_activations(exported.module()) >= 16  # 8 blocks x 2 calls


def test_every_part_converts_and_agrees_with_float(float_model, calibrated):
    plan, _, int8, inputs = calibrated
    described = pt2e.describe(int8, plan)
    assert len(described["int8_modules"]) >= 30 and not described["float_modules"]
    with torch.no_grad():
        for part in ALL:
            x = inputs[part][0]
            ref, out = get_part(float_model, part)(x), get_part(int8, part)(x)
            ref = ref.values() if isinstance(ref, dict) else ref if isinstance(ref, tuple) else (ref,)
            out = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else (out,)
            for r, o in zip(ref, out, strict=True):
                sqnr = 10 * torch.log10(r.pow(2).mean() / (r - o).pow(2).mean())
                assert sqnr > 15, (part, float(sqnr))
        (detections,) = int8([IMAGES[0]])
    assert set(detections) == {"boxes", "labels", "scores"}


def test_sensitivity_names_modules_as_quant_skip_takes_them(float_model, calibrated):
    _, _, int8, inputs = calibrated
    sqnr = pt2e.module_sqnr(float_model, int8, inputs)
    assert "backbone.body.0.0.0" in sqnr and "roi_heads.box_head.fc6" in sqnr
    values = list(sqnr.values())
    assert values == sorted(values) and all(v > 10 for v in values)


def test_skip_keeps_a_module_float(float_model):
    plan = QuantPlan(["box_head"], engine="pt2e", skip=["roi_heads.box_head.fc7"])
    prepared = pt2e.prepare(copy.deepcopy(float_model), plan, qat=False)
    with torch.no_grad():
        prepared([IMAGES[0]])
    described = pt2e.describe(pt2e.convert(prepared, plan), plan)
    assert described["int8_modules"] == ["roi_heads.box_head.fc6 (Linear)"]
    assert described["float_modules"][0] == "roi_heads.box_head.fc7: listed in quant.skip"
    with pytest.raises(QuantError, match="quant.skip: no module named"):
        pt2e.prepare(copy.deepcopy(float_model), QuantPlan(["box_head"], engine="pt2e", skip=["nope"]), False)


def test_restored_observer_state_converts_to_the_same_model(float_model, calibrated):
    plan, prepared, int8, _ = calibrated
    again = pt2e.convert(restore(float_model, plan, prepared.state_dict(), qat=False), plan)
    with torch.no_grad():
        a, b = int8([IMAGES[1]])[0], again([IMAGES[1]])[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_qat_trains_and_freezes_bn_and_observers(float_model):
    plan = QuantPlan(ALL, engine="pt2e")
    model = pt2e.prepare(copy.deepcopy(float_model).train(), plan, qat=True)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}]
    losses = model([IMAGES[0]], targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    bn_means = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("running_mean")}
    pt2e.freeze_bn(model)
    pt2e.observers(model, False)
    model.train()  # the detector goes back to training; frozen BN stays frozen
    model([IMAGES[1]], targets)
    after = {k: v for k, v in model.state_dict().items() if k.endswith("running_mean")}
    assert bn_means and all(torch.equal(bn_means[k], after[k]) for k in bn_means)
    enabled = [m.observer_enabled[0] for m in model.modules() if hasattr(m, "observer_enabled")]
    assert enabled and not any(enabled)


def test_qat_keeps_a_conv_with_batch_norm_float(float_model):
    """The accuracy search keeps backbone convolutions float and QAT trains its plan: torchao's
    QAT conv+BN fusion used to stop with an IndexError on a skipped conv (an empty annotation)."""
    kept = "backbone.body.1.0.1.conv1"
    plan = QuantPlan(["backbone"], engine="pt2e", skip=[kept])
    model = pt2e.prepare(copy.deepcopy(float_model).train(), plan, qat=True)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}]
    sum(model([IMAGES[0]], targets).values()).backward()
    described = pt2e.describe(pt2e.convert(model.eval(), plan), plan)
    assert f"{kept}: listed in quant.skip" in described["float_modules"]
    assert "backbone.body.1.0.1.conv2 (Conv2d)" in described["int8_modules"]


def test_per_tensor_weights_are_refused():
    with pytest.raises(QuantError, match="per_channel"):
        pt2e.quantization_config(QuantPlan(ALL, engine="pt2e", per_channel=False), qat=False)


def _relative_error(ref: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> float:
    return max(float((ref[k] - out[k]).norm() / ref[k].norm()) for k in ref)


def test_qat_graph_keeps_each_batch_norms_eps():
    """MobileNetV3's batch norms use eps 1e-3; torchao's QAT rewrite sets 1e-5 everywhere, which
    made its QAT graph 141x off float. With fake quant off it must equal float, training or not."""
    torch.manual_seed(0)
    model = build_detector("mobilenet_v3_large", TINY_MODEL, num_classes=3)
    with torch.no_grad():  # BN statistics from real activations: some channels near zero variance
        for _ in range(3):
            model.backbone(torch.rand(2, 3, 96, 128))
    x = torch.rand(2, 3, 96, 128)
    prepared = pt2e.prepare(copy.deepcopy(model), QuantPlan(["backbone"], engine="pt2e"), qat=True)
    pt2e.fake_quant(prepared, False)
    pt2e.observers(prepared, False)
    with torch.no_grad():  # training: batch statistics, the module's eps
        assert _relative_error(model.backbone(x), prepared.backbone(x)) < 1e-4  # both update stats
        pt2e.freeze_bn(prepared)
        model.eval()
        assert _relative_error(model.backbone(x), prepared.backbone(x)) < 1e-4


@pytest.mark.slow  # 1.2 min
def test_converted_qat_model_is_the_fake_quant_model_it_trained():
    """convert_pt2e folded MobileNetV3's BN with eps 1e-5 instead of its 1e-3: the int8 model
    drifted from its fake-quant model."""
    torch.manual_seed(0)
    model = build_detector("mobilenet_v3_large", TINY_MODEL, num_classes=3)
    with torch.no_grad():
        for _ in range(3):
            model.backbone(torch.rand(2, 3, 96, 128))
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_var.mul_(1e-3)  # variances near eps, as trained MobileNetV3 has many
            bn.weight.mul_(1e-3**0.5)
    plan = QuantPlan(["backbone"], engine="pt2e")
    qat = pt2e.prepare(copy.deepcopy(model), plan, qat=True)
    pt2e.freeze_bn(qat)
    with torch.no_grad():  # the fake-quant ranges move, as in training
        for _ in range(3):
            qat.backbone(torch.rand(2, 3, 96, 128))
    pt2e.observers(qat, False)
    int8 = pt2e.convert(qat.eval(), plan)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        fake, real = qat.backbone(x), int8.backbone(x)
    assert min(sqnr_db(fake[k], real[k]) for k in fake) > 30


def test_pattern_graphs_are_traced_once_and_handed_out_as_copies(monkeypatch):
    """torchao re-exports its rewrite patterns on every call: qdet traces each once (keyed by
    the pattern's code and what it closes over) and hands every caller its own copy."""
    import torch.nn.functional as F
    from torchao.quantization.pt2e import qat_utils, utils
    from torchao.quantization.pt2e.export_utils import WrapperModule

    memoized = utils._get_aten_graph_module_for_pattern
    assert memoized.memoized and qat_utils._get_aten_graph_module_for_pattern is memoized

    def pattern(p):  # a fresh closure per call, as torchao builds them
        def dropout(x):
            return F.dropout(x, p=p, training=True)

        return WrapperModule(dropout)

    exports = []
    real = torch.export.export
    monkeypatch.setattr(torch.export, "export", lambda *a, **k: exports.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(memoized, "cache", memoized.cache)  # restored after the test
    memoized.cache.clear()
    first = memoized(pattern(0.5), (torch.randn(1),))
    again = memoized(pattern(0.5), (torch.randn(1),))
    other_p = memoized(pattern(0.25), (torch.randn(1),))
    other_shape = memoized(pattern(0.5), (torch.randn(1, 3),))
    assert len(exports) == 3  # the second 0.5 pattern was not traced again
    assert again is not first and again.code == first.code
    assert "0.25" in other_p.code and "0.25" not in first.code  # the closure is part of the key
    assert other_shape is not first and len(memoized.cache) == 3
