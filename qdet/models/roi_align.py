"""Multi-scale RoI align split over parallel tasks.

torchvision's CPU ``roi_align`` kernel runs on one thread; after int8 conversion it is about half
of the detector's time. Splitting each image's RoIs in ``tasks`` chunks and running them with
``torch.jit.fork`` uses the other cores in TorchScript (eager mode, where fork would run the
chunks one after the other, takes torchvision's path). Every RoI is pooled by the same kernel
with the same level and scale, so the output is identical to torchvision's MultiScaleRoIAlign.
"""

# No "from __future__ import annotations": TorchScript compiles this module's annotations.

import torch
from torch import Tensor
from torchvision.ops.poolers import MultiScaleRoIAlign, _filter_input, _multiscale_roi_align, _setup_scales


class ParallelMultiScaleRoIAlign(MultiScaleRoIAlign):
    def __init__(
        self, featmap_names: list[str], output_size: int, sampling_ratio: int, tasks: int = 2
    ) -> None:
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.tasks = tasks

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        x_filtered = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                x_filtered, image_shapes, self.canonical_scale, self.canonical_level
            )
        # Eager mode runs forked chunks one after the other (and warns that torch.jit.fork is
        # deprecated): only TorchScript gains from the split.
        if self.tasks <= 1 or not torch.jit.is_scripting():
            return _multiscale_roi_align(
                x_filtered, boxes, self.output_size, self.sampling_ratio, self.scales, self.map_levels
            )
        # chunk k holds the k-th slice of every image's boxes, so batch indices stay right
        chunks: list[list[Tensor]] = []
        for k in range(self.tasks):
            chunk: list[Tensor] = []
            for b in boxes:
                n = b.shape[0]
                chunk.append(b[(n * k) // self.tasks : (n * (k + 1)) // self.tasks])
            chunks.append(chunk)
        futures = [
            torch.jit.fork(
                _multiscale_roi_align,
                x_filtered,
                chunks[k],
                self.output_size,
                self.sampling_ratio,
                self.scales,
                self.map_levels,
            )
            for k in range(1, self.tasks)
        ]
        results = [
            _multiscale_roi_align(
                x_filtered, chunks[0], self.output_size, self.sampling_ratio, self.scales, self.map_levels
            )
        ]
        for future in futures:
            results.append(torch.jit.wait(future))
        # back to torchvision's order: image 0's boxes, then image 1's, ...
        pieces: list[Tensor] = []
        offsets = [0 for _ in range(self.tasks)]
        for i in range(len(boxes)):
            for k in range(self.tasks):
                n = chunks[k][i].shape[0]
                pieces.append(results[k][offsets[k] : offsets[k] + n])
                offsets[k] += n
        return torch.cat(pieces)
