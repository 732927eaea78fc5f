"""The accuracy-budget search run for real (:mod:`qdet.quant.search` holds its rules): a plan,
the modules kept float beyond ``quant.skip``, is calibrated as the calibrate stage calibrates,
scored on the valid split by evaluate's code, and priced by :mod:`qdet.measure.plan_price`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qdet.core.aside import in_two_halves
from qdet.measure.accuracy import map50_with_interval
from qdet.quant.calibrate import calibrated
from qdet.quant.engines import int8_from_state
from qdet.quant.plan import QuantPlan, keep_float, plan_dict
from qdet.quant.search import Score

FLOAT, PTQ = "reference", "planned"  # the two scores of the first step (scratch file names)


class PlanScorer:
    """Scores plans on ``valid``; keeps each calibrated plan's observer state for the chosen one."""

    def __init__(
        self, model: nn.Module, state: dict[str, Any], train, valid, images: int, scratch: Path
    ) -> None:
        self.model, self.state, self.train, self.valid = model, state, train, valid
        self.images, self.scratch = images, scratch
        self.plan = QuantPlan(**state["plan"])
        self.observed: dict[tuple[str, ...], dict[str, Any]] = {(): state}

    def _int8(self, kept: list[str]) -> nn.Module:
        if not kept:  # PTQ as planned: the calibrate stage's own observers
            return int8_from_state(self.model, self.state, "observed", False)
        plan = keep_float(self.plan, kept)
        prepared, int8, _ = calibrated(self.model, plan, self.train, self.images)
        self.observed[tuple(kept)] = {
            **self.state,
            "observed": prepared.state_dict(),
            "plan": plan_dict(plan),
        }
        return int8

    def __call__(self, kept: list[str]) -> Score:
        return map50_with_interval(self._int8(kept), self.valid, self.scratch, "+".join(kept) or PTQ)

    def first(self, threads: int) -> tuple[Score, Score]:
        """(float's score, PTQ's score), each on half the threads in its own process."""

        def work(names: list[str], _here: bool) -> dict[str, Score]:
            detectors = {FLOAT: lambda: self.model, PTQ: lambda: self._int8([])}
            return {n: map50_with_interval(detectors[n](), self.valid, self.scratch, n) for n in names}

        done = in_two_halves(work, [FLOAT, PTQ], threads)
        return done[FLOAT], done[PTQ]

    def state_of(self, kept: list[str]) -> dict[str, Any]:
        """The checkpoint of a scored plan, as the calibrate stage writes one."""
        return self.observed[tuple(kept)]
