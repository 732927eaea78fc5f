"""Load a qdet detector compiled ahead of time (AOTInductor) and run it: torch + torchvision only.

This file is copied into every compiled artifact folder, next to ``detector.json`` and two
AOTInductor packages, so the detector loads in a fresh process without qdet::

    import importlib.util
    spec = importlib.util.spec_from_file_location("aot_detector", "models/export/qat/aot_detector.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    detector = module.load("models/export/qat")
    detections = detector([image])  # [{"boxes", "labels", "scores"}], image: 3xHxW float in [0, 1]

The packages hold everything whose shapes follow from the input size:

- ``backbone.pt2``: backbone + FPN; ``rpn_head.pt2``: the RPN head on one level, run on each;
- ``roi.pt2``: level mapping, RoI align, box head, predictor, box decoding and class scores:
  one call from the proposals to scored boxes.

The grouping is the profile's (default resnet18-FPN, PT2E int8, 2 threads, median of 20-30
interleaved calls): the backbone and the RPN head compiled as one package took 46.3 ms against
44.6 for the two packages; the RPN head compiled once for all four levels 6.8 ms against 4.6
for the one-level package called four times; RoI align compiled with the heads and the box
decoding 8.3 ms, level with RoI align eager + compiled heads (8.2) and one call instead of two.

Between and after them runs only what is data-dependent, with torchvision's own functions:
resize/normalise, anchors (computed once per input size), proposal selection (top-k, NMS),
score threshold and NMS of the detections. Neither tracing nor compiling happens at load time.
"""

import itertools
import json
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import boxes as box_ops

META = "detector.json"
PACKAGES = ("backbone", "rpn_head", "roi")  # <name>.pt2 in the folder
MIN_ROIS = 2  # the RoI package was compiled for 2 or more RoIs (export specialises sizes 0 and 1)
ANCHOR_CACHE = 8  # input sizes whose anchors are kept


class Transform(GeneralizedRCNNTransform):
    """torchvision's transform, minus the bilinear resample of an image already at the size it
    would be resized to (the scale is exactly 1): the resample would return the same pixels,
    and cost ~0.5 ms of a 512x320 image."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        short, long = min(image.shape[-2:]), max(image.shape[-2:])
        if not self.training and min(self.min_size[-1] / short, self.max_size / long) == 1.0:
            return image, target
        return super().resize(image, target)


class Package(nn.Module):
    """One AOTInductor package as a module: a profiler's hooks see its calls (``rpn_head``: one
    call per level)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.runner = torch._inductor.aoti_load_package(str(path))

    def forward(self, *inputs: Tensor):
        return self.runner(*inputs)


class Features(nn.Module):
    """``backbone.pt2`` and ``rpn_head.pt2`` on one image: feature maps, then objectness and box
    deltas of every anchor, flattened as torchvision's RPN flattens them.

    An image smaller than ``min_side`` (where a feature level would be one pixel, a size the
    package was not compiled for) is zero-padded at the bottom and right by :meth:`pad` first,
    as torchvision pads the smaller images of a batch (the anchors are laid on the padded one)."""

    def __init__(self, folder: Path, min_side: int) -> None:
        super().__init__()
        self.backbone = Package(folder / "backbone.pt2")
        self.rpn_head = Package(folder / "rpn_head.pt2")
        self.min_side = min_side

    def pad(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        if height >= self.min_side and width >= self.min_side:
            return image
        pad = [0, max(0, self.min_side - width), 0, max(0, self.min_side - height)]
        return torch.nn.functional.pad(image, pad)

    def forward(self, image: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        features = list(self.backbone(image))
        heads = [self.rpn_head(f) for f in features]
        objectness, deltas = concat_box_prediction_layers([h[0] for h in heads], [h[1] for h in heads])
        return features, objectness, deltas


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float) -> Tensor:
    """torchvision's per-group ("vanilla") batched NMS, whatever the box count: its other route,
    for fewer boxes, shifts each group's coordinates apart, which rounds them and can move an IoU
    across the threshold. ``groups``: integers >= 0."""
    order = groups.argsort(stable=True)
    kept, start = [], 0
    for size in torch.bincount(groups).tolist():
        members = order[start : start + size]
        kept.append(members[box_ops.nms(boxes[members], scores[members], threshold)])
        start += size
    survivors = torch.cat(kept).sort().values if kept else groups.new_zeros(0)
    return survivors[scores[survivors].sort(descending=True)[1]]


def first_kept(boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, count: int) -> Tensor:
    """``batched_nms(...)[:count]``, run on only the best-scored boxes that decide it.

    Greedy NMS decides a box by the better-scored boxes of its group alone, so the ``count``
    best survivors are found among the best ``k`` boxes once ``count`` of them survive: ``k``
    starts a quarter above ``count`` and doubles until they do (the RPN keeps 300 of 1200 boxes,
    nearly all survivors: NMS on ~375 boxes instead of 1200, ~1/10 of the IoUs). Equal scores
    are taken in input order, the order NMS visits them in, so the ``k`` boxes are the first
    ``k`` NMS visits and each is kept or suppressed as on the whole set; only the order of
    survivors with equal scores may differ (the final sort is torchvision's, not stable)."""
    total = scores.shape[0]
    order = scores.argsort(descending=True, stable=True)
    k = min(total, count + count // 4)
    while True:
        subset = order[:k].sort().values
        keep = batched_nms(boxes[subset], scores[subset], groups[subset], threshold)
        if keep.shape[0] >= count or k >= total:
            return subset[keep[:count]]
        k = min(total, 2 * k)


class Proposals(nn.Module):
    """Anchors (cached per input size), box decoding and torchvision's proposal selection, its
    NMS cut short by :func:`first_kept`."""

    def __init__(self, rpn: RegionProposalNetwork) -> None:
        super().__init__()
        self.rpn = rpn
        self.anchors: dict[tuple, Tensor] = {}

    def forward(
        self, image: Tensor, size: tuple[int, int], features: list[Tensor], objectness: Tensor, deltas: Tensor
    ) -> Tensor:
        key = (tuple(image.shape[-2:]), *(tuple(f.shape[-2:]) for f in features))
        anchors = self.anchors.get(key)
        if anchors is None:
            if len(self.anchors) >= ANCHOR_CACHE:
                self.anchors.clear()
            anchors = self.rpn.anchor_generator(ImageList(image, [size]), features)[0]
            self.anchors[key] = anchors
        per_location = self.rpn.anchor_generator.num_anchors_per_location()
        per_level = [n * f.shape[-2] * f.shape[-1] for n, f in zip(per_location, features, strict=True)]
        proposals = self.rpn.box_coder.decode(deltas, [anchors]).view(-1, 4)
        return self.select(proposals, objectness.view(1, -1), size, per_level)

    def select(
        self, proposals: Tensor, objectness: Tensor, size: tuple[int, int], per_level: list[int]
    ) -> Tensor:
        """``RegionProposalNetwork.filter_proposals`` for one image: the best ``pre_nms_top_n``
        of each level, clipped, small and low-scoring boxes dropped, NMS per level, the best
        ``post_nms_top_n``."""
        rpn = self.rpn
        starts = itertools.accumulate(per_level[:-1], initial=0)
        top = torch.cat(
            [
                level.topk(min(rpn.pre_nms_top_n(), level.shape[1]), dim=1)[1][0] + start
                for level, start in zip(objectness.split(per_level, 1), starts, strict=True)
            ]
        )
        levels = torch.repeat_interleave(torch.arange(len(per_level)), torch.tensor(per_level))[top]
        boxes = box_ops.clip_boxes_to_image(proposals[top], size)
        scores = torch.sigmoid(objectness[0, top])
        keep = box_ops.remove_small_boxes(boxes, rpn.min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.where(scores >= rpn.score_thresh)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        return boxes[first_kept(boxes, scores, levels, rpn.nms_thresh, rpn.post_nms_top_n())]


class RoI(nn.Module):
    """``roi.pt2``: scored boxes ``[N, classes, 4]`` and class scores ``[N, classes]`` of the
    proposals; fewer than ``MIN_ROIS`` proposals are padded with empty boxes and cropped back
    (each RoI is computed on its own)."""

    def __init__(self, path: Path, pooled: list[int]) -> None:
        super().__init__()
        self.runner = Package(path)
        self.pooled = pooled  # the feature levels RoI align pools from

    def forward(self, features: list[Tensor], proposals: Tensor) -> tuple[Tensor, Tensor]:
        count = proposals.shape[0]
        if count < MIN_ROIS:
            proposals = torch.cat([proposals, proposals.new_zeros(MIN_ROIS - count, 4)])
        boxes, scores = self.runner(*[features[i] for i in self.pooled], proposals)
        return boxes[:count], scores[:count]


class Detections(nn.Module):
    """torchvision's post-processing of the scored boxes: clip, drop the background class, score
    threshold, empty boxes, per-class NMS, the best ``per_image``."""

    def __init__(self, score_thresh: float, nms_thresh: float, per_image: int) -> None:
        super().__init__()
        self.score_thresh, self.nms_thresh, self.per_image = score_thresh, nms_thresh, per_image

    def forward(self, boxes: Tensor, scores: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        boxes = box_ops.clip_boxes_to_image(boxes, size)
        labels = torch.arange(scores.shape[-1], device=scores.device).view(1, -1).expand_as(scores)
        boxes, scores = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1)
        labels = labels[:, 1:].reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.per_image]
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}


class Detector(nn.Module):
    """``detector(images)`` -> one ``{"boxes", "labels", "scores"}`` dict per image, each image
    run on its own (the packages were compiled for one image of any size)."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__()
        folder = Path(folder)
        self.meta = json.loads((folder / META).read_text())
        missing = [p for p in PACKAGES if not (folder / f"{p}.pt2").exists()]
        if missing:
            raise RuntimeError(
                f"{folder}: no {missing[0]}.pt2; a folder from another qdet version loads with the "
                "aot_detector.py inside it"
            )
        m, layout = self.meta["model"], self.meta["layout"]
        self.classes: list[str] = self.meta.get("classes", [])
        self.transform = Transform(m["min_size"], m["max_size"], [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        self.features = Features(folder, layout["min_side"])
        if m["fpn"]:
            sizes = tuple((s,) for s in m["anchor_sizes"])
            ratios = (tuple(m["aspect_ratios"]),) * len(sizes)
        else:
            sizes, ratios = (tuple(m["anchor_sizes"]),), (tuple(m["aspect_ratios"]),)
        top_n = {"training": m["rpn_pre_nms_top_n_test"], "testing": m["rpn_pre_nms_top_n_test"]}
        post_n = {"training": m["rpn_post_nms_top_n_test"], "testing": m["rpn_post_nms_top_n_test"]}
        rpn = RegionProposalNetwork(
            AnchorGenerator(sizes, ratios), nn.Identity(), 0.7, 0.3, 256, 0.5, top_n, post_n, 0.7, 0.0
        )  # torchvision's FasterRCNN defaults: NMS 0.7, score threshold 0
        self.proposals = Proposals(rpn.eval())
        self.roi = RoI(folder / "roi.pt2", layout["pooled"])
        self.detections = Detections(m["box_score_thresh"], 0.5, m["box_detections_per_img"])

    @torch.inference_mode()
    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        original = [(int(i.shape[-2]), int(i.shape[-1])) for i in images]
        batch, _ = self.transform(images)
        results = []
        for i, size in enumerate(batch.image_sizes):
            image = self.features.pad(batch.tensors[i : i + 1])
            features, objectness, deltas = self.features(image)
            proposals = self.proposals(image, size, features, objectness, deltas)
            boxes, scores = self.roi(features, proposals)
            results.append(self.detections(boxes, scores, size))
        return self.transform.postprocess(results, batch.image_sizes, original)


def load(folder: str | Path) -> Detector:
    return Detector(folder).eval()
