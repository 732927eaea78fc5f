"""The quantization engines, by their ``quant.engine`` names: the one place outside
``qdet/quant`` that spells them. Config validates the key against it and
:mod:`qdet.quant.engines` loads the module implementing each (it names the modules: the stages'
code dependencies are found by following module names); everything else asks the engine."""

from __future__ import annotations

ENGINES = (
    "fx",  # torch.ao FX graph mode + TorchScript (deprecated upstream)
    "pt2e",  # torch.export + torchao + AOTInductor (maintained)
)
# engines whose every API warns it is deprecated (torch 2.14): their warnings are noise in a stage
DEPRECATED_UPSTREAM = frozenset({"fx"})
# what made a checkpoint stored before quant.engine existed (its plan has no engine)
BEFORE_ENGINES = "fx"
