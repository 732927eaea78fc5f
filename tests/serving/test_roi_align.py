from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from qdet.serving.roi_align import GatherRoIAlign

NAMES = ["0", "1", "2"]


def _inputs(batch, channels_last=False, edge=False):
    torch.manual_seed(0)
    x = OrderedDict((str(i), torch.rand(batch, 16, 40 // 2**i, 64 // 2**i)) for i in range(3))
    if channels_last:
        x = OrderedDict((k, v.contiguous(memory_format=torch.channels_last)) for k, v in x.items())
    boxes = []
    for n in (37, 11, 0)[:batch]:
        xy = torch.rand(n, 2) * 200
        b = torch.cat([xy, xy + torch.rand(n, 2) * 300 + 2], 1)
        if edge and n:  # on the last row/column, past the map, and tiny (width < 1 feature pixel)
            b[0] = torch.tensor([500.0, 300.0, 512.0, 320.0])
            b[1] = torch.tensor([480.0, 310.0, 530.0, 340.0])
            b[2] = torch.tensor([10.0, 10.0, 10.5, 10.2])
        boxes.append(b)
    return x, boxes, [(320, 512)] * batch


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("edge", [False, True])
def test_gather_matches_torchvision_eager_and_scripted(batch, channels_last, edge):
    x, boxes, shapes = _inputs(batch, channels_last, edge)
    ref = MultiScaleRoIAlign(NAMES, 7, 2)(x, boxes, shapes)
    gathered = GatherRoIAlign(NAMES, 7, 2, gather=True)(x, boxes, shapes)
    scripted = torch.jit.script(GatherRoIAlign(NAMES, 7, 2))(x, boxes, shapes)
    for out in (gathered, scripted):
        assert out.shape == ref.shape and out.is_contiguous()
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    assert ref.abs().amax() > 0.1  # features really pooled, not all zeros on both sides


def test_one_level_and_plain_eager():
    x, boxes, shapes = _inputs(2)
    one = OrderedDict([("0", x["0"])])
    torch.testing.assert_close(
        GatherRoIAlign(["0"], 5, 2, gather=True)(one, boxes, shapes),
        MultiScaleRoIAlign(["0"], 5, 2)(one, boxes, shapes),
        rtol=0,
        atol=1e-5,
    )
    # eager inference without the flag is torchvision's kernel itself (the float baseline)
    assert torch.equal(
        GatherRoIAlign(NAMES, 7, 2).eval()(x, boxes, shapes),
        MultiScaleRoIAlign(NAMES, 7, 2)(x, boxes, shapes),
    )


def test_training_pools_by_gather_with_torchvisions_gradients(monkeypatch):
    x, boxes, shapes = _inputs(3, edge=True)
    boxes = [torch.cat([b, torch.tensor([[0.0, 0.0, 800.0, 600.0]])]) for b in boxes]  # top level: side > 448
    grad_out = torch.rand(sum(len(b) for b in boxes), 16, 7, 7)
    grads = {}
    pools = {"torchvision": MultiScaleRoIAlign(NAMES, 7, 2), "qdet": GatherRoIAlign(NAMES, 7, 2)}
    for name, pool in pools.items():
        leaves = OrderedDict((k, v.clone().requires_grad_()) for k, v in x.items())
        pool.train()
        (pool(leaves, boxes, shapes) * grad_out).sum().backward()
        grads[name] = [v.grad for v in leaves.values()]
    for ours, ref in zip(grads["qdet"], grads["torchvision"], strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)  # sums of many: float order
    assert all(g.abs().amax() > 0.1 for g in grads["torchvision"])  # every level received gradient

    def slow_kernel(*args, **kwargs):
        raise AssertionError("torchvision's roi_align ran in training")

    monkeypatch.setattr("torchvision.ops.poolers.roi_align", slow_kernel)
    GatherRoIAlign(NAMES, 7, 2).train()(x, boxes, shapes)
    with pytest.raises(AssertionError, match="ran in training"):  # eager inference keeps torchvision's kernel
        GatherRoIAlign(NAMES, 7, 2).eval()(x, boxes, shapes)
