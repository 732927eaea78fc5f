"""What an engine is: the :class:`Engine` interface each engine module implements, and
:class:`Saved`, what writing an artifact returns. Apart from :mod:`qdet.quant.engines`, which
loads the engines by name, so that an engine importing these does not import its loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from qdet.config import ModelConfig
from qdet.quant.plan import QuantPlan


@dataclass(frozen=True)
class Saved:
    """An artifact written by an engine: where, its size in bytes, compile seconds per part."""

    path: Path
    size: int
    compile_seconds: dict[str, float]


class Engine(Protocol):
    """``module_name``: the name a float model's module has once the engine prepared the model
    (QAT freezes layers by their float names). ``timed_int8``: the int8 model a per-part
    breakdown can hook into, given the loaded artifact and the QAT checkpoint it came from.
    ``export_qdq``: the converted detector as ONNX QDQ with its own ranges (seconds), or
    :class:`qdet.quant.parts.QuantError` saying why this engine cannot."""

    ARTIFACT: str  # what convert writes, for the console ("TorchScript file", ...)
    FLOAT_DTYPES: tuple[str, ...]  # what its int8 artifacts' float ops can compute in, fp32 first

    def prepare(self, model: nn.Module, plan: QuantPlan, qat: bool) -> nn.Module: ...
    def convert(self, model: nn.Module, plan: QuantPlan) -> nn.Module: ...
    def describe(self, model: nn.Module, plan: QuantPlan) -> dict[str, object]: ...
    def module_sqnr(
        self, float_model: nn.Module, int8_model: nn.Module, inputs: dict[str, list[torch.Tensor]]
    ) -> dict[str, float]: ...
    def fake_quant(self, model: nn.Module, on: bool) -> None: ...
    def observers(self, model: nn.Module, on: bool) -> None: ...
    def freeze_bn(self, model: nn.Module) -> None: ...
    def module_name(self, name: str) -> str: ...
    def timed_int8(self, eager: nn.Module, loaded: Any, state: dict[str, Any]) -> nn.Module: ...
    def save_int8(
        self,
        model: nn.Module,
        model_cfg: ModelConfig,
        meta: dict[str, Any],
        out_dir: Path,
        variant: str,
        float_dtype: str = "fp32",
    ) -> Saved: ...
    def export_qdq(self, model: nn.Module, path: Path, example: torch.Tensor) -> float: ...
    def save_float(
        self, model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any], out_dir: Path
    ) -> dict[str, Saved]: ...
