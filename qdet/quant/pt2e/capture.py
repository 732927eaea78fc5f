"""Capturing a part with ``torch.export`` and keeping it inside the eager detector
(:class:`ExportedPart`), so the detector still runs end to end for calibration and training."""

from __future__ import annotations

import torch
from torch import nn
from torchao.quantization.pt2e import (
    generate_numeric_debug_handle,
    move_exported_model_to_eval,
    move_exported_model_to_train,
)

from qdet.quant.parts import dynamic_shapes
from qdet.quant.pt2e.workarounds import BnConstants, restore_bn_constants, split_shared_activations


class ExportedPart(nn.Module):
    """A captured part inside the eager detector.

    ``train()``/``eval()`` on the detector reach the graph as torchao's move-to-train/eval
    (batch norm and dropout), except that frozen batch-norm statistics stay frozen; each batch
    norm keeps its own eps and momentum (``bn_constants``).
    """

    def __init__(
        self,
        graph_module: torch.fx.GraphModule,
        out_channels: int | None,
        example: tuple[torch.Tensor, ...],
        bn_constants: BnConstants | None = None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.example = example  # what it was captured with: shapes for compiling it later
        self.bn_constants = bn_constants or {}
        self.bn_frozen = False
        if out_channels is not None:
            self.out_channels = out_channels  # FasterRCNN reads it from the backbone

    def train(self, mode: bool = True) -> ExportedPart:
        self.training = mode
        self._bn_mode(training=mode and not self.bn_frozen)
        return self

    def freeze_bn(self) -> None:
        self.bn_frozen = True
        self._bn_mode(training=False)

    def _bn_mode(self, training: bool) -> None:
        (move_exported_model_to_train if training else move_exported_model_to_eval)(self.graph_module)
        restore_bn_constants(self.graph_module, self.bn_constants)

    def forward(self, x: torch.Tensor):
        return self.graph_module(x)


def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], training: bool) -> torch.fx.GraphModule:
    module = module.train(training)
    exported = torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes(inputs))
    generate_numeric_debug_handle(exported)  # lets module_sqnr pair float and int8 nodes
    graph_module = exported.module()
    split_shared_activations(graph_module)
    return graph_module
