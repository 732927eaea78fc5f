"""Load a qdet detector compiled ahead of time (AOTInductor) and run it: torch + torchvision only.

This file is copied into every compiled artifact folder, next to ``detector.json`` and two
AOTInductor packages, so the detector loads in a fresh process without qdet::

    import importlib.util
    spec = importlib.util.spec_from_file_location("aot_detector", "models/export/qat/aot_detector.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    detector = module.load("models/export/qat")
    detections = detector([image])  # [{"boxes", "labels", "scores"}], image: 3xHxW float in [0, 1]

The packages hold everything whose shapes follow from the input size, grouped as the profile
chose (docs/internals.md): ``backbone.pt2`` (normalisation when the layout says ``normalize``,
backbone, FPN), ``rpn_head.pt2`` (the RPN head on one level, run on each), ``roi.pt2`` (level
mapping, RoI align, heads, box decoding, class scores). Between and after them runs only what is
data-dependent, with torchvision's own functions: resize, anchors (once per input size), proposal
selection (top-k, NMS), score threshold and NMS of the detections. Nothing compiles at load.
"""

import itertools
import json
import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import boxes as box_ops

META = "detector.json"
PACKAGES = ("backbone", "rpn_head", "roi")  # <name>.pt2 in the folder
MIN_ROIS = 2  # the RoI package was compiled for 2 or more RoIs (export specialises sizes 0 and 1)
ANCHOR_CACHE = 8  # input sizes whose anchors are kept


def canvas(images: list[Tensor], height: int, width: int, fill: Tensor | None) -> Tensor:
    """``images`` (``[C, H, W]``) at the top left of a ``[N, C, height, width]`` batch, the rest
    ``fill`` (one value per channel; zero when None). One image that fills it is returned as it
    lies, without a copy."""
    if len(images) == 1 and tuple(images[0].shape[-2:]) == (height, width):
        return images[0].unsqueeze(0).contiguous()
    shape = (len(images), images[0].shape[0], height, width)
    zeros = images[0].new_zeros(shape)
    batch = zeros if fill is None else (zeros + fill.to(zeros).view(1, -1, 1, 1))
    for i, image in enumerate(images):
        batch[i, :, : image.shape[-2], : image.shape[-1]].copy_(image)
    return batch


class Transform(GeneralizedRCNNTransform):
    """torchvision's transform, minus the work that changes no pixel: the resample of an image
    already at its size (scale exactly 1), the copy of one image whose sides are multiples of 32
    into a batch of its size, and the resize of its boxes back at scale 1.

    With ``folded`` the backbone package normalises: images stay in [0, 1], and a batch pads with
    the mean, which the backbone's normalisation turns into torchvision's zero padding."""

    def __init__(self, min_size: int, max_size: int, mean: list, std: list, folded: bool = False) -> None:
        super().__init__(min_size, max_size, mean, std)
        self.folded, self.fill = folded, torch.tensor(mean) if folded else None  # fill: normalised 0

    def normalize(self, image: Tensor) -> Tensor:
        if not self.folded or not image.is_floating_point():
            return super().normalize(image)  # raises torchvision's error on integer pixels
        return image

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        short, long = min(image.shape[-2:]), max(image.shape[-2:])
        if not self.training and min(self.min_size[-1] / short, self.max_size / long) == 1.0:
            return image, target
        return super().resize(image, target)

    def batch_images(self, images: list[Tensor], size_divisible: int = 32) -> Tensor:
        height, width = (
            math.ceil(max(i.shape[axis] for i in images) / size_divisible) * size_divisible
            for axis in (-2, -1)
        )
        return canvas(images, height, width, self.fill)

    def postprocess(self, result: list[dict], image_shapes: list, original: list) -> list[dict]:
        back = super().postprocess  # zero-argument super() does not reach into a comprehension
        return [
            r if tuple(s) == tuple(o) else back([r], [s], [o])[0]
            for r, s, o in zip(result, image_shapes, original, strict=True)
        ]


class Package(nn.Module):
    """One AOTInductor package as a module: a profiler's hooks see its calls (``rpn_head``: one
    call per level). Its output structure is read once, at load (the package's own ``__call__``
    parses it from JSON on every call)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.runner = torch._inductor.aoti_load_package(str(path))
        self.out_spec = pytree.treespec_loads(self.runner.loader.get_call_spec()[1])

    def forward(self, *inputs: Tensor):
        return pytree.tree_unflatten(self.runner.loader.boxed_run(list(inputs)), self.out_spec)


class Features(nn.Module):
    """``backbone.pt2`` and ``rpn_head.pt2`` on one image: feature maps, then objectness and box
    deltas of every anchor, flattened as torchvision's RPN flattens them.

    An image smaller than ``min_side`` (where a feature level would be one pixel, a size the
    package was not compiled for) is padded at the bottom and right by :meth:`pad` first with the
    transform's padding value, as torchvision pads a batch (the anchors lie on the padded one)."""

    def __init__(self, folder: Path, min_side: int, fill: Tensor | None) -> None:
        super().__init__()
        self.backbone = Package(folder / "backbone.pt2")
        self.rpn_head = Package(folder / "rpn_head.pt2")
        self.min_side, self.fill = min_side, fill

    def pad(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        if height >= self.min_side and width >= self.min_side:
            return image
        return canvas([image[0]], max(height, self.min_side), max(width, self.min_side), self.fill)

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
    starts a quarter above ``count`` and doubles until they do. Equal scores are taken in input
    order, the order NMS visits them in, so the ``k`` boxes are the first ``k`` NMS visits and each
    is kept or suppressed as on the whole set; only the order of survivors with equal scores may
    differ (the final sort is torchvision's, not stable)."""
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
    """Anchors (cached per input size, with the level of each), box decoding and torchvision's
    proposal selection, its NMS cut short by :func:`first_kept`. Only the boxes the per-level
    top-k keeps are decoded (decoding is row by row: the same boxes as decoding all anchors)."""

    def __init__(self, rpn: RegionProposalNetwork) -> None:
        super().__init__()
        self.rpn = rpn
        self.anchors: dict[tuple, tuple[Tensor, Tensor, list[int]]] = {}

    def forward(
        self, image: Tensor, size: tuple[int, int], features: list[Tensor], objectness: Tensor, deltas: Tensor
    ) -> Tensor:
        key = (tuple(image.shape[-2:]), *(tuple(f.shape[-2:]) for f in features))
        cached = self.anchors.get(key)
        if cached is None:
            if len(self.anchors) >= ANCHOR_CACHE:
                self.anchors.clear()
            anchors = self.rpn.anchor_generator(ImageList(image, [size]), features)[0]
            per_location = self.rpn.anchor_generator.num_anchors_per_location()
            per_level = [n * f.shape[-2] * f.shape[-1] for n, f in zip(per_location, features, strict=True)]
            levels = torch.repeat_interleave(torch.arange(len(per_level)), torch.tensor(per_level))
            cached = self.anchors[key] = (anchors, levels, per_level)
        anchors, levels, per_level = cached
        limit, starts = self.rpn.pre_nms_top_n(), itertools.accumulate(per_level[:-1], initial=0)
        top = torch.cat(  # the best pre_nms_top_n anchors of each level
            [
                level.topk(min(limit, level.shape[1]), dim=1)[1][0] + start
                for level, start in zip(objectness.view(1, -1).split(per_level, 1), starts, strict=True)
            ]
        )
        boxes = self.rpn.box_coder.decode_single(deltas[top], anchors[top])
        return self.select(boxes, objectness[top].view(-1), levels[top], size)

    def select(self, proposals: Tensor, objectness: Tensor, levels: Tensor, size: tuple[int, int]) -> Tensor:
        """The rest of ``RegionProposalNetwork.filter_proposals`` on the top-k: clip, drop small and
        low-scoring boxes (one mask), NMS per level, the best ``post_nms_top_n``."""
        rpn = self.rpn
        boxes = box_ops.clip_boxes_to_image(proposals, size)
        scores = torch.sigmoid(objectness)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        wanted = (widths >= rpn.min_size) & (heights >= rpn.min_size) & (scores >= rpn.score_thresh)
        keep = torch.where(wanted)[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        return boxes[first_kept(boxes, scores, levels, rpn.nms_thresh, rpn.post_nms_top_n())]


class RoI(nn.Module):
    """``roi.pt2``: boxes ``[N, classes, 4]`` and class scores ``[N, classes]`` of the proposals;
    fewer than ``MIN_ROIS`` are padded with empty boxes and cropped back (each RoI on its own)."""

    def __init__(self, path: Path, pooled: list[int]) -> None:
        super().__init__()
        self.runner, self.pooled = Package(path), pooled  # pooled: the levels RoI align reads

    def forward(self, features: list[Tensor], proposals: Tensor) -> tuple[Tensor, Tensor]:
        count = proposals.shape[0]
        if count < MIN_ROIS:
            proposals = torch.cat([proposals, proposals.new_zeros(MIN_ROIS - count, 4)])
        boxes, scores = self.runner(*[features[i] for i in self.pooled], proposals)
        return boxes[:count], scores[:count]


class Detections(nn.Module):
    """torchvision's post-processing of the scored boxes: clip, drop the background class, score
    threshold, empty boxes, per-class NMS, the best ``per_image`` (the threshold first: clipping is
    box by box, so only the boxes that pass it are clipped)."""

    def __init__(self, score_thresh: float, nms_thresh: float, per_image: int) -> None:
        super().__init__()
        self.score_thresh, self.nms_thresh, self.per_image = score_thresh, nms_thresh, per_image

    def forward(self, boxes: Tensor, scores: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        classes = scores.shape[-1] - 1  # background first
        scores = scores[:, 1:].reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]  # then clip only these (box by box)
        scores, labels = scores[keep], keep % classes + 1
        boxes = box_ops.clip_boxes_to_image(boxes[:, 1:].reshape(-1, 4)[keep], size)
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
        # folders compiled before normalisation moved into backbone.pt2 say nothing: ImageNet's
        norm = layout.get("normalize", {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
        fold = "normalize" in layout
        self.transform = Transform(m["min_size"], m["max_size"], norm["mean"], norm["std"], fold)
        self.features = Features(folder, layout["min_side"], self.transform.fill)
        sizes = tuple((s,) for s in m["anchor_sizes"]) if m["fpn"] else (tuple(m["anchor_sizes"]),)
        ratios = (tuple(m["aspect_ratios"]),) * len(sizes)
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
