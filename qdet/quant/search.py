"""Accuracy to a budget: which quantized modules to keep in float so that int8 loses at most
``quant.max_drop`` mAP@.5 on the valid split, at the least latency. Pure rules over two
callables (score a plan on valid, price a plan in milliseconds), so the ranking and the stop
are tested on a fake evaluator; the search stage wires the real ones.

The rules, as NNCF's accuracy control does it but measured rather than assumed:
1. score PTQ as planned; within budget, stop (one evaluation);
2. SQNR is a first guess: the worst ``probes`` modules are each scored kept float alone;
3. the probed modules that gained are kept float in order of gain per millisecond, the rest in
   SQNR order, one more a step, until the drop fits or the evaluations run out;
4. the chosen plan is the cheapest that fits, else the cheapest of those within half the budget
   of the most accurate found (a smaller gain pays no latency: QAT, the next step, retrains
   anyway), stated as missing the budget. Never every quantized module kept float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

Score = tuple[float, list[float]]  # mAP@.5 on valid and its 95% interval
MAX_EVALUATIONS = 7  # PTQ as planned and at most 6 more


@dataclass
class Step:
    """One plan scored: the modules kept float beyond ``quant.skip``, valid mAP@.5 with its
    interval, the plan's price and why it was tried."""

    kept_float: list[str]
    map50: float
    map50_ci95: list[float]
    latency_ms: float
    why: str


@dataclass
class Outcome:
    reference: float  # the float model's valid mAP@.5
    budget: float
    steps: list[Step] = field(default_factory=list)
    chosen: int = 0  # index into steps
    met: bool = False

    def drop(self, step: Step) -> float:
        return self.reference - step.map50

    def line(self) -> str:
        """The outcome in one line."""
        s = self.steps[self.chosen]
        kept = ", ".join(s.kept_float) or "nothing"
        verdict = "within" if self.met else "MISSES"
        tail = "" if self.met else "; QAT on this plan is the next step"
        return (
            f"quant search: {len(self.steps)} evaluation(s); keeps {kept} float; valid mAP@.5 "
            f"{s.map50:.3f}, drop {self.drop(s):+.3f} {verdict} the budget {self.budget:.3f}{tail}"
        )

    def as_dict(self) -> dict[str, object]:
        chosen = self.steps[self.chosen]
        return {
            "reference_map50": self.reference,
            "max_drop": self.budget,
            "met": self.met,
            "evaluations": len(self.steps),
            "chosen": self.chosen,
            "kept_float": chosen.kept_float,
            "map50_drop": self.drop(chosen),
            "steps": [asdict(s) for s in self.steps],
        }


def search(
    reference: float,
    budget: float,
    ranked: list[str],
    score: Callable[[list[str]], Score],
    price: Callable[[list[str]], float],
    probes: int = 3,
    max_evaluations: int = MAX_EVALUATIONS,
) -> Outcome:
    """The search over ``ranked`` (quantized modules, worst SQNR first) against the float
    ``reference``: see the module's rules."""
    out = Outcome(reference, budget)

    def run(kept: list[str], why: str) -> Step:
        map50, ci = score(kept)
        out.steps.append(step := Step(list(kept), map50, ci, price(kept), why))
        return step

    def fits(step: Step) -> bool:
        return out.drop(step) <= budget + 1e-9

    first = run([], "PTQ as planned")
    if not fits(first):
        room = max(0, min(probes, max_evaluations - 1, len(ranked) - 1))
        probed = [run([m], f"{m} float alone (SQNR rank {i + 1})") for i, m in enumerate(ranked[:room])]
        if not any(fits(s) for s in probed):
            _keep_more(ranked, first, probed, run, fits, len(ranked), max_evaluations - len(out.steps))
    fitting = [i for i, s in enumerate(out.steps) if fits(s)]
    out.met = bool(fitting)
    if not fitting:  # rule 4: within half the budget of the most accurate, the cheapest
        top = max(s.map50 for s in out.steps)
        fitting = [i for i, s in enumerate(out.steps) if s.map50 >= top - budget / 2 - 1e-9]
    out.chosen = min(fitting, key=lambda i: (out.steps[i].latency_ms, -out.steps[i].map50))
    return out


def _keep_more(
    ranked: list[str],
    first: Step,
    probed: list[Step],
    run: Callable[[list[str], str], Step],
    fits: Callable[[Step], bool],
    quantized: int,
    evaluations: int,
) -> None:
    """Rule 3: cumulative plans, probed gainers by gain per millisecond, then SQNR order."""

    def value(s: Step) -> float:
        return (s.map50 - first.map50) / max(s.latency_ms - first.latency_ms, 1e-6)

    gainers = [s.kept_float[0] for s in sorted(probed, key=value, reverse=True) if s.map50 > first.map50]
    probed_names = {s.kept_float[0] for s in probed}
    order = gainers + [m for m in ranked if m not in probed_names]
    kept: list[str] = []
    for module in order:
        if evaluations <= 0 or len(kept) + 1 >= quantized:
            return
        kept.append(module)
        if len(kept) == 1 and module in probed_names:
            continue  # already scored alone
        evaluations -= 1
        if fits(run(kept, f"+ {module} float")):
            return
