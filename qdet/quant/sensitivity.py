"""Per-module quantization error, engine-independent parts: the float inputs each part sees on
calibration images, and the report (CSV, bar plot). Each engine measures the SQNR (dB) of its
int8 modules against float itself (``module_sqnr``). Low SQNR = a candidate for ``quant.skip``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qdet.quant.parts import QuantError, get_part

HEADER = "module,sqnr_db"


class InputRecorder:
    """Forward pre-hooks that keep the first ``limit`` inputs of each part of a float model."""

    def __init__(self, model: nn.Module, parts: list[str], limit: int = 8) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {p: [] for p in parts}
        self.handles = []
        for part in parts:

            def hook(_module, args, part=part):
                if len(self.inputs[part]) < limit:
                    self.inputs[part].append(args[0].detach().clone())

            self.handles.append(get_part(model, part).register_forward_pre_hook(hook))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def write_sensitivity(sqnr: dict[str, float], path: Path) -> None:
    """CSV ``module,sqnr_db``, worst first (a DVC plot and an MLflow artifact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{k},{v:.3f}" for k, v in sqnr.items()]
    path.write_text("\n".join(lines) + "\n")


def read_sensitivity(path: Path) -> dict[str, float]:
    """What :func:`write_sensitivity` wrote, worst first (the accuracy search's ranking)."""
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines or lines[0] != HEADER:
        raise QuantError(f"{path}: not the calibrate stage's '{HEADER}' table; rerun: dvc repro calibrate")
    out: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        module, _, sqnr = line.rpartition(",")
        try:
            out[module] = float(sqnr)
        except ValueError:
            raise QuantError(f"{path}, line {number}: {line!r} is not 'module,sqnr_db'") from None
    return out
