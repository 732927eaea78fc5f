"""The accuracy-budget search run for real (:mod:`qdet.quant.search` holds its rules): a plan,
the modules kept float beyond ``quant.skip``, is calibrated as the calibrate stage calibrates,
scored on the valid split by evaluate's code, and priced by :mod:`qdet.measure.plan_price`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qdet.measure.accuracy import map50_with_interval
from qdet.quant.calibrate import calibrated
from qdet.quant.plan import keep_float, plan_dict, stored_plan
from qdet.quant.search import Score


class PlanScorer:
    """Scores plans on ``valid``; keeps each calibrated plan's observer state for the chosen one.
    PTQ as planned (nothing more kept float) is ``first``: the calibrate stage scored it."""

    def __init__(
        self,
        model: nn.Module,
        state: dict[str, Any],
        calibration,
        valid,
        images: int,
        scratch: Path,
        first: Score,
    ) -> None:
        self.model, self.state, self.calibration, self.valid = model, state, calibration, valid
        self.images, self.scratch, self.first = images, scratch, first
        self.plan = stored_plan(state, "the calibrated checkpoint")
        self.observed: dict[tuple[str, ...], dict[str, Any]] = {(): state}

    def __call__(self, kept: list[str]) -> Score:
        if not kept:
            return self.first
        plan = keep_float(self.plan, kept)
        prepared, int8, _ = calibrated(self.model, plan, self.calibration, self.images)
        self.observed[tuple(kept)] = {
            **self.state,
            "observed": prepared.state_dict(),
            "plan": plan_dict(plan),
        }
        return map50_with_interval(int8, self.valid, self.scratch, "+".join(kept))

    def state_of(self, kept: list[str]) -> dict[str, Any]:
        """The checkpoint of a scored plan, as the calibrate stage writes one."""
        return self.observed[tuple(kept)]
