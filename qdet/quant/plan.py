"""What to quantize and how: built once from the config, stored in every quantized checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdet.config import CalibrateConfig, QuantConfig
from qdet.config.engines import BEFORE_ENGINES
from qdet.core.files import stage_output
from qdet.quant.parts import PARTS, QuantError

QAT_OBSERVER = "moving_average"  # fake-quant tracks ranges by moving average while weights move


@dataclass
class QuantPlan:
    """The quantized parts, backend, observer and skips; ``make_plan`` builds it from params."""

    parts: list[str]
    engine: str = BEFORE_ENGINES  # a plan stored before quant.engine existed
    backend: str = "x86"
    observer: str = "histogram"
    per_channel: bool = True
    reduce_range: bool = False
    skip: list[str] = field(default_factory=list)

    def skip_for(self, part: str) -> list[str]:
        """``quant.skip`` names are full paths (``backbone.body.0``); make them part-relative."""
        prefix = PARTS[part] + "."
        return [s[len(prefix) :] for s in self.skip if s.startswith(prefix)]


def make_plan(quant: QuantConfig, calibrate: CalibrateConfig, qat: bool) -> QuantPlan:
    """PTQ observes with ``calibrate.observer``; QAT with moving averages."""
    observer = QAT_OBSERVER if qat else calibrate.observer
    return QuantPlan(
        quant.parts, quant.engine, quant.backend, observer, quant.per_channel, quant.reduce_range, quant.skip
    )


def keep_float(plan: QuantPlan, kept: list[str]) -> QuantPlan:
    """``plan`` with ``kept`` (full module paths) skipped as well: the accuracy search's plans."""
    return dataclasses.replace(plan, skip=[*plan.skip, *(k for k in kept if k not in plan.skip)])


def searched_plan(plan: QuantPlan, path: Path) -> QuantPlan:
    """``plan`` with the modules the search stage chose to keep float (its ``--plan-out``
    file), so QAT trains the plan PTQ ships."""
    kept = stage_output(path, "kept_float", "search")
    if not isinstance(kept, list) or not all(isinstance(k, str) for k in kept):
        raise QuantError(f"{path}: no list of module names under 'kept_float'; rerun: dvc repro search")
    return keep_float(plan, kept)


def plan_dict(plan: QuantPlan) -> dict[str, object]:
    return dataclasses.asdict(plan)


def stored_plan(state: dict[str, Any], where: str) -> QuantPlan:
    """The plan a quantized checkpoint (calibrate's, search's, qat's) was made with, read back;
    one line naming ``where`` when it holds none (a float checkpoint) or one that does not read."""
    stored = state.get("plan")
    if not isinstance(stored, dict):
        raise QuantError(
            f"{where}: no quantization plan in it (a float checkpoint?); rerun: dvc repro calibrate qat"
        )
    try:
        return QuantPlan(**stored)
    except TypeError as error:
        raise QuantError(
            f"{where}: its quantization plan does not read ({error}); rerun: dvc repro calibrate qat"
        ) from None


def same_engine(plans: dict[str, QuantPlan]) -> QuantPlan:
    """The last of ``plans`` (checkpoint path -> its plan), which must all come from one engine:
    int8 models of two engines cannot share one set of artifacts."""
    engines = {path: plan.engine for path, plan in plans.items()}
    if len(set(engines.values())) > 1:
        made = " and ".join(f"{path} by {engine}" for path, engine in engines.items())
        raise QuantError(f"{made}: rerun calibrate and qat with one quant.engine (dvc repro does)")
    return list(plans.values())[-1]
