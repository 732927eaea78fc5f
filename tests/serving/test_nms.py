"""The compiled detector's proposal NMS against torchvision's: the same boxes kept, in the same
order up to equal scores, on the cases that break rewrites (nothing to keep, ties, boxes at the
border, one group, fewer survivors than asked for)."""

import pytest
import torch
from torchvision.ops import boxes as box_ops

from qdet.serving.aot_detector import batched_nms, first_kept


def reference(boxes, scores, groups, threshold, count):
    """torchvision's per-group batched NMS (the route it takes for RPN-sized inputs), cut."""
    return box_ops._batched_nms_vanilla(boxes, scores, groups, threshold)[:count]


def random_case(seed: int, n: int, groups: int, ties: bool, border: bool):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    if border:  # clipped to a 160x160 image: many boxes share an edge at 0 or 160
        boxes = box_ops.clip_boxes_to_image(boxes - 40, (160, 160))
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
    scores = torch.rand(n, generator=g)
    if ties:  # int8 logits give few distinct scores
        scores = (scores * 8).floor() / 8
    return boxes, scores, torch.randint(0, groups, (n,), generator=g)


def as_rows(boxes, scores, keep):
    return sorted(zip(scores[keep].tolist(), boxes[keep].tolist(), strict=True))


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("border", [False, True])
def test_the_same_boxes_are_kept_as_torchvision_keeps(groups, ties, border):
    for seed in range(20):
        boxes, scores, levels = random_case(seed, 50 + 40 * seed, groups, ties, border)
        for count in (1, 30, 300, 5000):
            want = reference(boxes, scores, levels, 0.7, count)
            got = first_kept(boxes, scores, levels, 0.7, count)
            # best first, every one a survivor of NMS on the whole set; where the cut falls among
            # equal scores either may be kept (torchvision's own sort is not stable)
            assert torch.equal(scores[got], scores[want])
            assert set(got.tolist()) <= set(reference(boxes, scores, levels, 0.7, None).tolist())
            last = scores[want[-1]] if len(want) else 2.0
            above = [scores[got] > last, scores[want] > last]
            assert as_rows(boxes, scores, got[above[0]]) == as_rows(boxes, scores, want[above[1]])
            if not ties:
                assert torch.equal(got, want)
        assert torch.equal(
            batched_nms(boxes, scores, levels, 0.7), reference(boxes, scores, levels, 0.7, None)
        )


def test_equal_scores_are_visited_in_input_order_as_torchvision_visits_them():
    # three identical boxes with one score, then a box elsewhere: the survivor is the first of
    # the three in input order, as torchvision's NMS keeps it, wherever the cut falls
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.5, 0.4, 0.5, 0.5])
    groups = torch.zeros(4, dtype=torch.int64)
    assert first_kept(boxes, scores, groups, 0.7, 1).tolist() == [0]
    assert first_kept(boxes, scores, groups, 0.7, 2).tolist() == [0, 1]


def test_when_the_best_boxes_suppress_each_other_the_search_widens():
    place = torch.tensor([[0, 0, 10, 10.0]])
    boxes = torch.cat([place + 20 * (i // 10) for i in range(50)])  # 10 copies at each of 5 places
    scores = torch.linspace(1.0, 0.5, 50)
    groups = torch.zeros(50, dtype=torch.int64)
    assert first_kept(boxes, scores, groups, 0.7, 5).tolist() == [0, 10, 20, 30, 40]


def test_nothing_to_keep_and_more_asked_than_there_is():
    empty = torch.zeros(0, 4)
    none = first_kept(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.7, 300)
    assert none.shape == (0,) and none.dtype == torch.int64
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10.0]])  # IoU 0.81: the second goes
    kept = first_kept(boxes, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.int64), 0.7, 300)
    assert kept.tolist() == [0]


def test_boxes_of_different_groups_never_suppress_each_other():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    kept = first_kept(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.7, 300)
    assert kept.tolist() == [0, 1]


def rpn_case(seed: int):
    """A torchvision RPN with the compiled detector's settings, two feature levels of one image,
    random objectness and box deltas, some boxes collapsed, many outside the image (no ties: where
    the cut falls among equal scores, either may keep either box, tested above)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.rpn import RegionProposalNetwork

    n = {"training": 60, "testing": 60}
    anchors = AnchorGenerator(((16,), (32,)), ((1.0,),) * 2)
    rpn = RegionProposalNetwork(anchors, torch.nn.Identity(), 0.7, 0.3, 256, 0.5, n, {**n}, 0.7, 0.0).eval()
    rpn.post_nms_top_n = lambda: 40
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 3, 64, 96)
    features = [torch.zeros(1, 8, 8, 12), torch.zeros(1, 8, 4, 6)]
    total = 8 * 12 + 4 * 6
    objectness = torch.randn(total, 1, generator=g) * 4
    deltas = torch.randn(total, 4, generator=g)
    deltas[:5, 2:] = -20  # collapsed to nearly nothing: dropped as small, though among the best
    objectness[:5] = 20 + torch.arange(5.0).view(5, 1)
    return rpn, image, features, objectness, deltas


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_proposals_are_torchvision_s_with_only_the_top_k_decoded(seed):
    """Decoding the per-level top-k instead of every anchor, and one mask for the small and
    low-scoring boxes, give the boxes torchvision's RPN selects, in its order."""
    from torchvision.models.detection.image_list import ImageList

    from qdet.serving.aot_detector import Proposals

    rpn, image, features, objectness, deltas = rpn_case(seed)
    ours = Proposals(rpn)(image, (64, 96), features, objectness, deltas)
    images = ImageList(image, [(64, 96)])
    anchors = rpn.anchor_generator(images, features)
    decoded = rpn.box_coder.decode(deltas, anchors).view(1, -1, 4)
    per_level = [f.shape[2] * f.shape[3] for f in features]
    (theirs,), (scores,) = rpn.filter_proposals(decoded, objectness, images.image_sizes, per_level)
    assert len(ours) == len(theirs) == 40
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_detections_are_torchvision_s_boxes_labels_and_scores(seed):
    """The post-processing, which thresholds before it clips, gives torchvision's RoI heads'
    detections: boxes outside the image, empty boxes, ties in score included."""
    from torchvision.models.detection.roi_heads import RoIHeads

    from qdet.serving.aot_detector import Detections

    g = torch.Generator().manual_seed(seed)
    count, classes = 60, 4
    xy = torch.rand(count, 2, generator=g) * 120 - 20  # some outside the 100 x 80 image
    proposals = torch.cat([xy, xy + torch.rand(count, 2, generator=g) * 40 + 1], 1)
    logits = (torch.randn(count, classes, generator=g) * 3).round()  # few distinct scores
    regression = torch.randn(count, classes * 4, generator=g) * 0.5
    regression[:4, 2::4] = -20  # collapsed to empty boxes
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.05, 0.5, 20)
    (want_boxes,), (want_scores,), (want_labels,) = heads.postprocess_detections(
        logits, regression, [proposals], [(80, 100)]
    )
    decoded = heads.box_coder.decode(regression, [proposals]).reshape(count, -1, 4)
    got = Detections(0.05, 0.5, 20)(decoded, torch.softmax(logits, -1), (80, 100))
    assert 0 < len(got["scores"]) <= 20
    assert torch.equal(got["boxes"], want_boxes)
    assert torch.equal(got["scores"], want_scores) and torch.equal(got["labels"], want_labels)
