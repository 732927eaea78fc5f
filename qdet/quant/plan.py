"""What to quantize and how: built once from the config, stored in every quantized checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from qdet.config import CalibrateConfig, QuantConfig
from qdet.quant.parts import PARTS

QAT_OBSERVER = "moving_average"  # fake-quant tracks ranges by moving average while weights move


@dataclass
class QuantPlan:
    """The quantized parts, backend, observer and skips; ``make_plan`` builds it from params."""

    parts: list[str]
    engine: str = "fx"
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


def plan_dict(plan: QuantPlan) -> dict[str, object]:
    return dataclasses.asdict(plan)
