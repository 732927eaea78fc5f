"""PT2E end to end without deprecations: calibrate -> convert -> compile ahead of time -> load in
a fresh process without qdet -> detect, with torch's deprecation warnings turned into errors."""

import copy
import subprocess
import sys
import warnings
import zipfile

import pytest
import torch

from qdet.models.detector import build_detector
from qdet.quant import pt2e
from qdet.quant.aot import CompilerMissing, check_compiler, rows_first_linear, save_compiled, stages
from qdet.quant.parts import PARTS
from qdet.quant.plan import QuantPlan
from qdet.serving.aot_detector import PACKAGES, load
from tests.helpers import TINY_MODEL

LOAD_WITHOUT_QDET = """
import importlib.util, json, sys
sys.modules["qdet"] = None  # any import of qdet now fails
import torch
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("aot_detector", folder + "/aot_detector.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
detector = module.load(folder)
torch.manual_seed(0)
(out,) = detector([torch.rand(3, 96, 128)])
print(json.dumps({k: list(v.shape) for k, v in out.items()}), detector.classes)
"""


@pytest.mark.slow  # an AOTInductor compile (1.8 min); the PT2E pipeline test compiles too
def test_pt2e_path_raises_no_torch_deprecation_and_loads_without_qdet(tmp_path):
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    plan = QuantPlan(list(PARTS), engine="pt2e")
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("error", category=category, module=r"torch(\.|$)")
            warnings.filterwarnings("error", category=category, module=r"torchao(\.|$)")
        prepared = pt2e.prepare(copy.deepcopy(model), plan, qat=False)
        with torch.no_grad():
            for _ in range(2):
                prepared([torch.rand(3, 96, 128)])
        int8 = pt2e.convert(prepared, plan)
        size, seconds = save_compiled(int8, TINY_MODEL, {"classes": ["a", "b"]}, tmp_path / "int8")
    assert set(seconds) == set(PACKAGES) and size > 0
    assert {p.name for p in (tmp_path / "int8").iterdir()} == {
        "aot_detector.py",
        "detector.json",
        *(f"{package}.pt2" for package in PACKAGES),
    }
    with zipfile.ZipFile(tmp_path / "int8" / "backbone.pt2") as package:
        wrapper = next(n for n in package.namelist() if n.endswith(".wrapper.cpp"))
        code = package.read(wrapper).decode()
    assert "qconv" in code  # the compiled backbone runs oneDNN int8 convolutions
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_QDET, str(tmp_path / "int8")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shapes, classes = done.stdout.strip().rsplit(" ", 1)[0], done.stdout.strip().split(" ", 1)[1]
    assert '"boxes"' in shapes and "['a', 'b']" in classes


def test_missing_compiler_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(CompilerMissing, match="needs a C\\+\\+ compiler.*apt-get install g\\+\\+"):
        check_compiler()


@pytest.mark.slow  # three AOTInductor compiles of the float model (~1 min)
def test_compiled_detector_detects_what_the_eager_one_does(tmp_path):
    """The compiled glue (RoI align, box decoding, softmax in roi.pt2; anchors cached; proposal
    selection and post-processing around the packages) gives the eager detector's detections:
    at the compiled size, at another size, twice at one size (cached anchors); an image small
    enough to be padded still detects, and a single proposal is scored."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    save_compiled(model, TINY_MODEL, {"classes": ["a", "b"]}, tmp_path / "float")
    detector = load(tmp_path / "float")
    images = [torch.rand(3, 96, 128), torch.rand(3, 120, 90), torch.rand(3, 96, 128)]  # 120 x 90: 128 x 96
    with torch.no_grad():
        (padded,) = detector([torch.rand(3, 20, 300)])  # 8 x 128 after the transform: padded to 96 rows
        assert padded["boxes"].shape[1] == 4 and len(padded["scores"]) > 0
        cache = detector.proposals.anchors
        anchors, *_ = cache[next(k for k in cache if k[0] == (96, 128))]
        assert anchors[:, 3].max() > 90  # laid over the padded 96 rows (stride 8), not squeezed into 32
        for image in images:
            (want,), (got,) = model([image]), detector([image])
            assert len(got["scores"]) == len(want["scores"]) > 0
            # random weights score many boxes alike: pair each detection with the eager one of
            # the nearest score (the order of near-ties may differ by float rounding)
            nearest = (got["scores"][:, None] - want["scores"][None, :]).abs().argmin(1)
            assert torch.allclose(got["scores"], want["scores"][nearest], atol=1e-4)
            assert (got["labels"] == want["labels"][nearest]).float().mean() > 0.9
            same = got["labels"] == want["labels"][nearest]
            assert torch.allclose(got["boxes"][same], want["boxes"][nearest][same], atol=1e-2)
        one = detector.roi(
            detector.features(detector.transform([images[0]])[0].tensors)[0], torch.tensor([[1.0, 2, 30, 40]])
        )
        assert [t.shape[0] for t in one] == [1, 1]


@pytest.mark.slow  # six AOTInductor compiles (~3 min); bf16 is emulated on a CPU without it (slow, correct)
def test_pt2e_int8_with_bf16_float_ops_compiles_bf16_and_detects_as_fp32_does(tmp_path):
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    plan = QuantPlan(list(PARTS), engine="pt2e")
    prepared = pt2e.prepare(copy.deepcopy(model), plan, qat=False)
    with torch.no_grad():
        for _ in range(2):
            prepared([torch.rand(3, 96, 128)])
    int8 = pt2e.convert(prepared, plan)
    for dtype in ("fp32", "bf16"):
        pt2e.save_int8(int8, TINY_MODEL, {"classes": ["a", "b"]}, tmp_path, dtype, dtype)
    with zipfile.ZipFile(tmp_path / "bf16" / "backbone.pt2") as package:
        code = "".join(package.read(n).decode() for n in package.namelist() if n.endswith(".cpp"))
    assert "bfloat16" in code and "qconv" in code  # int8 convolutions, bf16 between them
    assert load(tmp_path / "bf16").meta["float_dtype"] == "bf16"
    image = torch.rand(3, 96, 128)
    fp32, bf16 = load(tmp_path / "fp32")([image])[0], load(tmp_path / "bf16")([image])[0]
    top = min(5, len(fp32["scores"]))
    assert top > 0 and torch.allclose(bf16["scores"][:top], fp32["scores"][:top], atol=0.05)


def test_roi_stage_is_the_models_own_pooling_heads_and_box_decoding():
    """What roi.pt2 compiles, run eagerly: the detector's RoI align (torchvision's kernel in eager
    mode), box head, predictor, box decoding and softmax give what ``roi.pt2`` returns, on every
    pooled level (proposals small and large) and on the size the maps came from."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    compiled, _ = stages(model, TINY_MODEL)
    stage, (*features, _), _ = compiled["roi"]
    # the level follows the box's size (canonical 224 px on stride 16): boxes past the tiny image
    # reach the coarser levels
    proposals = torch.tensor(
        [[1.0, 2, 12, 14], [5, 5, 60, 70], [0, 0, 127, 95], [0, 0, 300, 300], [0, 0, 900, 900]]
    )
    with torch.no_grad():
        boxes, scores = stage(*features, proposals)
        maps = dict(zip(stage.names, features, strict=True))
        pooled = model.roi_heads.box_roi_pool(maps, [proposals], [(96, 128)])
        logits, deltas = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))
    want = model.roi_heads.box_coder.decode(deltas, [proposals])
    assert torch.allclose(boxes, want, atol=1e-4)
    assert torch.allclose(scores, torch.softmax(logits, -1), atol=1e-5)
    assert set(model.roi_heads.box_roi_pool.map_levels([proposals]).tolist()) == {0, 1, 2}


def test_feature_maps_pass_between_the_packages_channels_last():
    """backbone.pt2 normalises the image as torchvision's transform does and returns its levels
    channels-last; the packages after it are compiled for that layout (values unchanged): no
    transpose at either side of the hand-over."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    compiled, _ = stages(model, TINY_MODEL)
    backbone, (image,), _ = compiled["backbone"]
    with torch.no_grad():
        levels = backbone(image)
        want = list(model.backbone(model.transform.normalize(image[0])[None]).values())
    channels_last = torch.channels_last
    assert all(f.is_contiguous(memory_format=channels_last) for f in levels)
    assert all(torch.equal(f, w) for f, w in zip(levels, want, strict=True))
    _, (rpn_input,), _ = compiled["rpn_head"]
    _, (*roi_inputs, _), _ = compiled["roi"]
    assert all(f.is_contiguous(memory_format=channels_last) for f in [rpn_input, *roi_inputs])


def test_box_head_reads_the_gathered_rows_as_they_lie_with_its_first_layer_permuted():
    """The compiled RoI stage hands the box head the gather's ``[K, P, P, C]`` rows untransposed;
    the head copy with its first linear's columns permuted gives the original head's output on the
    transposed features, float and PT2E int8 alike, and leaves the original untouched."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    head = model.roi_heads.box_head
    channels, size = TINY_MODEL.fpn_channels, TINY_MODEL.roi_output_size
    pooled = torch.rand(5, channels, size, size)
    rows = pooled.permute(0, 2, 3, 1).contiguous().reshape(5, channels, size, size)  # memory as gathered
    before = head.fc6.weight.clone()
    with torch.no_grad():
        assert torch.allclose(rows_first_linear(head, channels, size)(rows), head(pooled), atol=1e-5)
        assert torch.equal(head.fc6.weight, before)
        assert not torch.allclose(head(rows), head(pooled), atol=1e-3)  # the permutation matters
    plan = QuantPlan(["box_head"], engine="pt2e")
    prepared = pt2e.prepare(copy.deepcopy(model), plan, qat=False)
    with torch.no_grad():
        prepared.roi_heads.box_head(pooled)
        graph = pt2e.convert(prepared, plan).roi_heads.box_head.graph_module
        want = graph(pooled)
        got = rows_first_linear(graph, channels, size)(rows)
    assert torch.allclose(
        got[0] if isinstance(got, tuple) else got, want[0] if isinstance(want, tuple) else want, atol=1e-4
    )


def test_backbone_is_exported_for_sides_that_are_multiples_of_32():
    """The transform pads every image to multiples of 32, and the backbone is exported for
    exactly those sides (its feature-map sizes linear in them), down to the layout's min_side."""
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    compiled, layout = stages(model, TINY_MODEL)
    module, inputs, dynamic = compiled["backbone"]
    exported = torch.export.export(module, inputs, dynamic_shapes=(dynamic,))  # as compile_module does
    image = exported.graph.find_nodes(op="placeholder")[-1].meta["val"]
    rows, cols = (str(side) for side in image.shape[2:])
    assert rows.startswith("32*") and cols.startswith("32*")
    lowest = {str(s): r.lower for s, r in exported.range_constraints.items()}
    assert 32 * lowest[rows.removeprefix("32*")] == layout["min_side"]


def test_the_transform_skips_a_resample_to_the_same_size_and_gives_torchvision_s_pixels(monkeypatch):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from qdet.serving.aot_detector import Transform

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ours, theirs = Transform(96, 128, mean, std).eval(), GeneralizedRCNNTransform(96, 128, mean, std).eval()
    at_size, other = torch.rand(3, 96, 128), torch.rand(3, 90, 100)
    for image in (at_size, other, torch.rand(3, 128, 96)):
        a, b = ours([image]), theirs([image])
        assert torch.equal(a[0].tensors, b[0].tensors) and a[0].image_sizes == b[0].image_sizes
    calls = []
    real = torch.nn.functional.interpolate
    monkeypatch.setattr(torch.nn.functional, "interpolate", lambda *a, **k: calls.append(1) or real(*a, **k))
    ours([at_size])
    assert calls == []  # no resample at scale 1
    ours([other])
    assert calls == [1]


def test_a_folded_transform_hands_the_backbone_torchvision_s_pixels_once_normalised():
    """With normalisation inside backbone.pt2, the loader's transform keeps pixels in [0, 1] and
    pads with the mean: normalised, its batch is torchvision's, zero padding included; one image
    at a multiple of 32 goes over as it lies, and boxes at scale 1 come back untouched."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from qdet.quant.aot import Normalised
    from qdet.serving.aot_detector import Transform

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ours = Transform(96, 128, mean, std, folded=True).eval()
    theirs = GeneralizedRCNNTransform(96, 128, mean, std).eval()
    normalise = Normalised(torch.nn.Identity(), mean, std)
    at_size = torch.rand(3, 96, 128)
    for image in (at_size, torch.rand(3, 90, 100), torch.rand(3, 96, 120)):  # the last pads 8 columns
        a, b = ours([image]), theirs([image])
        assert a[0].image_sizes == b[0].image_sizes
        torch.testing.assert_close(normalise(a[0].tensors), b[0].tensors, rtol=0, atol=1e-6)
    assert ours([at_size])[0].tensors.data_ptr() == at_size.data_ptr()  # no copy
    boxes = {"boxes": torch.tensor([[1.5, 2.5, 30.25, 40.75]])}
    assert ours.postprocess([dict(boxes)], [(96, 128)], [(96, 128)])[0]["boxes"] is boxes["boxes"]
    assert torch.equal(
        ours.postprocess([dict(boxes)], [(96, 128)], [(48, 64)])[0]["boxes"], boxes["boxes"] / 2
    )
    with pytest.raises(TypeError, match="floating type"):
        ours([torch.zeros(3, 96, 128, dtype=torch.uint8)])
