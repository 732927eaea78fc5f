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
