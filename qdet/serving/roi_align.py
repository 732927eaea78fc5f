"""Multi-scale RoI align as one gather over channels-last features (torch + torchvision only).

torchvision's CPU ``roi_align`` kernel walks channel by channel on one thread: after int8
conversion it was about a third of the detector's time. With a fixed sampling ratio, every output
bin is a weighted sum of ``4 * ratio**2`` feature vectors (the bilinear corners of its sample
points), so the whole multi-scale pooling is one ``embedding_bag`` over the rows of the feature
maps laid out channels-last (``H*W`` rows of ``C`` values): vectorised over channels and spread
over the threads by ATen. The positions, corners, clamping and zeroed out-of-map samples follow
torchvision's kernel (``aligned=False``), so the output equals its output up to float rounding
(tested); the level of each RoI comes from torchvision's LevelMapper.

AOTInductor compiles it into every compiled artifact's ``roi.pt2`` and TorchScript into the FX
artifacts: it imports nothing from qdet.
"""

# No "from __future__ import annotations": TorchScript compiles this module's annotations.

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops.poolers import (
    MultiScaleRoIAlign,
    _convert_to_roi_format,
    _filter_input,
    _multiscale_roi_align,
    _setup_scales,
)


def _axis(start: Tensor, end: Tensor, bins: int, ratio: int, size: Tensor) -> tuple[Tensor, Tensor]:
    """Lower/upper corner indices and their weights, ``[K, bins, ratio, 2]``, of every sample
    point along one axis, as torchvision's ``roi_align`` pre-computes them."""
    bin_size = torch.clamp(end - start, min=1.0) / bins
    p = torch.arange(bins, dtype=start.dtype, device=start.device).view(1, bins, 1)
    s = torch.arange(ratio, dtype=start.dtype, device=start.device).view(1, 1, ratio)
    pos = start.view(-1, 1, 1) + p * bin_size.view(-1, 1, 1) + (s + 0.5) * (bin_size / ratio).view(-1, 1, 1)
    size = size.to(start.dtype).view(-1, 1, 1)
    valid = ((pos >= -1.0) & (pos <= size)).to(start.dtype)  # outside the map: contributes 0
    pos = torch.clamp(pos, min=0.0)
    low = torch.minimum(torch.floor(pos), size - 1)
    high = torch.minimum(low + 1, size - 1)  # on or past the last row: both corners on it
    frac = pos - low
    return torch.stack([low, high], -1).long(), torch.stack([(1 - frac) * valid, frac * valid], -1)


def gather_roi_align(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    scales: list[float],
    output_size: int,
    ratio: int,
    channels_last: bool = False,
) -> Tensor:
    """``[K, C, P, P]`` RoI features of ``rois`` (``[K, 5]``: batch index, x1, y1, x2, y2), each
    pooled on ``features[levels[k]]`` with ``scales[levels[k]]``, ``ratio**2`` samples per bin;
    with ``channels_last``, ``[K, P, P, C]`` as the gather writes them (no transpose)."""
    channels = features[0].shape[1]
    table = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, channels) for f in features])
    heights = torch.tensor([f.shape[2] for f in features], device=rois.device)
    widths = torch.tensor([f.shape[3] for f in features], device=rois.device)
    rows = torch.tensor([f.shape[0] * f.shape[2] * f.shape[3] for f in features], device=rois.device)
    first_row = torch.cumsum(rows, 0) - rows
    scale = torch.tensor(scales, dtype=rois.dtype, device=rois.device)[levels]
    height, width = heights[levels], widths[levels]
    y, wy = _axis(rois[:, 2] * scale, rois[:, 4] * scale, output_size, ratio, height)
    x, wx = _axis(rois[:, 1] * scale, rois[:, 3] * scale, output_size, ratio, width)
    base = first_row[levels] + rois[:, 0].long() * height * width
    row = base.view(-1, 1, 1, 1) + y * width.view(-1, 1, 1, 1)  # [K, P, ratio, 2]
    # one bag per output bin (k, py, px): its samples' corners, dims [K, Py, Px, ratio, 2, ratio, 2]
    index = row[:, :, None, :, :, None, None] + x[:, None, :, None, None, :, :]
    weight = (wy / (ratio * ratio))[:, :, None, :, :, None, None] * wx[:, None, :, None, None, :, :]
    bags = 4 * ratio * ratio
    pooled = F.embedding_bag(
        index.reshape(-1, bags), table, mode="sum", per_sample_weights=weight.reshape(-1, bags)
    )
    pooled = pooled.view(-1, output_size, output_size, channels)
    if channels_last:
        return pooled
    return pooled.permute(0, 3, 1, 2).contiguous()


class GatherRoIAlign(MultiScaleRoIAlign):
    """torchvision's MultiScaleRoIAlign, pooled by :func:`gather_roi_align` in TorchScript and
    compiled artifacts, in training (float and QAT: torchvision's ``roi_align`` backward is a
    one-thread scatter, 11% of a resnet18 training step; ``embedding_bag``'s backward made a step
    16% faster, same gradients up to float rounding), and in eager when ``gather`` is set. Eager
    inference without the flag keeps torchvision's kernel: the float baseline is the model a
    torchvision user runs. With ``channels_last`` the gather's features come ``[K, P, P, C]``
    (see :func:`gather_roi_align`)."""

    def __init__(
        self, featmap_names: list[str], output_size: int, sampling_ratio: int, gather: bool = False
    ) -> None:
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.gather = gather
        self.channels_last = False

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        scales = self.scales
        mapper = self.map_levels
        ratio = self.sampling_ratio
        if (
            (torch.jit.is_scripting() or self.gather or self.training)
            and ratio > 0
            and scales is not None
            and mapper is not None
        ):
            rois = _convert_to_roi_format(boxes)
            if len(features) == 1:
                levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
            else:
                levels = mapper(boxes)
            return gather_roi_align(
                features, rois, levels, scales, self.output_size[0], ratio, self.channels_last
            )
        return _multiscale_roi_align(features, boxes, self.output_size, ratio, scales, mapper)
