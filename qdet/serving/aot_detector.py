"""Load a qdet detector compiled ahead of time (AOTInductor) and run it: torch + torchvision only.

This file is copied into every compiled artifact folder, next to ``detector.json`` and one
``<part>.pt2`` package per part (backbone, rpn_head, box_head, box_predictor), so the detector
loads in a fresh process without qdet::

    import importlib.util
    spec = importlib.util.spec_from_file_location("aot_detector", "models/export/qat/aot_detector.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    detector = module.load("models/export/qat")
    detections = detector([image])  # [{"boxes", "labels", "scores"}], image: 3xHxW float in [0, 1]

The compiled parts carry the learned, quantized work; torchvision supplies what is
data-dependent and stays float: resize/normalise, anchors, proposal selection, box decoding, NMS
and post-processing. RoI align is ``roi_align.py`` beside this file (torchvision's level mapping,
pooled by one gather; same output as torchvision's kernel). Neither tracing nor compiling
happens at load time.
"""

import importlib.util
import json
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator

META = "detector.json"
ROI_ALIGN = "roi_align.py"  # qdet.serving.roi_align, copied beside this file
PARTS = ("backbone", "rpn_head", "box_head", "box_predictor")


class CompiledPart(nn.Module):
    """One AOTInductor package.

    Image-level parts (``per_image``) are compiled for one image: a batch is run image by
    image. Inputs smaller than the compiled minimum (2 along the dynamic dimensions: RoI count,
    feature height and width) are zero-padded and the outputs cropped back; for these parts
    (convolutions with zero padding, per-row linears) that gives exactly the outputs of the
    unpadded input."""

    def __init__(
        self, path: Path, pad_dims: tuple[int, ...], per_image: bool = False, out_channels: int | None = None
    ) -> None:
        super().__init__()
        self.runner = torch._inductor.aoti_load_package(str(path))
        self.pad_dims = pad_dims
        self.per_image = per_image
        if out_channels is not None:
            self.out_channels = out_channels

    def forward(self, x: Tensor):
        if self.per_image and x.shape[0] > 1:
            return _cat([self.forward(image) for image in x.split(1)])
        short = {d: x.shape[d] for d in self.pad_dims if x.shape[d] < 2}
        if not short:
            return self.runner(x)
        pad = [0] * (2 * x.dim())
        for d, size in short.items():
            pad[2 * (x.dim() - 1 - d) + 1] = 2 - size  # F.pad lists the last dimension first
        out = self.runner(torch.nn.functional.pad(x, pad))
        return _crop(out, short)


def _cat(outs: list):
    first = outs[0]
    if isinstance(first, Tensor):
        return torch.cat(outs)
    if isinstance(first, dict):
        return type(first)((k, _cat([o[k] for o in outs])) for k in first)
    return type(first)(_cat([o[i] for o in outs]) for i in range(len(first)))


def _crop(out, short: dict[int, int]):
    if isinstance(out, Tensor):
        for d, size in short.items():
            out = out.narrow(d, 0, size)
        return out
    if isinstance(out, dict):
        return type(out)((k, _crop(v, short)) for k, v in out.items())
    return type(out)(_crop(v, short) for v in out)


class LoopRPNHead(nn.Module):
    """The one-level RPN head applied to every feature level, as torchvision's RPNHead does."""

    def __init__(self, level: nn.Module) -> None:
        super().__init__()
        self.level = level

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for feature in features:
            a, b = self.level(feature)
            logits.append(a)
            deltas.append(b)
        return logits, deltas


def _roi_align_module():
    """The gather RoI align shipped beside this file (a plain import would need qdet)."""
    spec = importlib.util.spec_from_file_location("qdet_roi_align", Path(__file__).with_name(ROI_ALIGN))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(folder: Path, meta: dict) -> FasterRCNN:
    m = meta["model"]
    backbone = CompiledPart(folder / "backbone.pt2", (2, 3), True, meta["out_channels"])
    if m["fpn"]:
        sizes = tuple((s,) for s in m["anchor_sizes"])
        ratios = (tuple(m["aspect_ratios"]),) * len(sizes)
    else:
        sizes, ratios = (tuple(m["anchor_sizes"]),), (tuple(m["aspect_ratios"]),)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=m["min_size"],
        max_size=m["max_size"],
        rpn_anchor_generator=AnchorGenerator(sizes, ratios),
        rpn_head=LoopRPNHead(CompiledPart(folder / "rpn_head.pt2", (2, 3), True)),
        rpn_pre_nms_top_n_test=m["rpn_pre_nms_top_n_test"],
        rpn_post_nms_top_n_test=m["rpn_post_nms_top_n_test"],
        box_roi_pool=_roi_align_module().GatherRoIAlign(meta["featmap_names"], m["roi_output_size"], 2, True),
        box_head=CompiledPart(folder / "box_head.pt2", (0,)),
        box_predictor=CompiledPart(folder / "box_predictor.pt2", (0,)),
        box_score_thresh=m["box_score_thresh"],
        box_detections_per_img=m["box_detections_per_img"],
    ).eval()


class Detector(nn.Module):
    """``detector(images)`` -> one ``{"boxes", "labels", "scores"}`` dict per image."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__()
        folder = Path(folder)
        self.meta = json.loads((folder / META).read_text())
        self.classes: list[str] = self.meta.get("classes", [])
        self.model = build(folder, self.meta)

    @torch.inference_mode()
    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return self.model(images)


def load(folder: str | Path) -> Detector:
    return Detector(folder).eval()
