from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from qdet.models.roi_align import ParallelMultiScaleRoIAlign


def _inputs(batch):
    torch.manual_seed(0)
    x = OrderedDict((str(i), torch.rand(batch, 16, 40 // 2**i, 64 // 2**i)) for i in range(3))
    boxes = []
    for n in (37, 11, 0)[:batch]:
        xy = torch.rand(n, 2) * 200
        boxes.append(torch.cat([xy, xy + torch.rand(n, 2) * 150 + 2], 1))
    return x, boxes, [(320, 512)] * batch


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("tasks", [1, 2, 3])
def test_same_output_as_torchvision_eager_and_scripted(batch, tasks):
    x, boxes, shapes = _inputs(batch)
    ref = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)(x, boxes, shapes)
    par = ParallelMultiScaleRoIAlign(["0", "1", "2"], 7, 2, tasks)
    assert torch.equal(par(x, boxes, shapes), ref)
    scripted = torch.jit.script(ParallelMultiScaleRoIAlign(["0", "1", "2"], 7, 2, tasks))
    assert torch.equal(scripted(x, boxes, shapes), ref)
