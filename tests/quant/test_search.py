"""The accuracy-budget search on a fake evaluator: each module's measured contribution to the
drop is known, so the ranking and the stopping rules can be checked exactly."""

from __future__ import annotations

import pytest

from qdet.quant.search import MAX_EVALUATIONS, search

FLOAT = 0.90


class Fake:
    """mAP@.5 = PTQ's plus the gain of each module kept float; each costs its milliseconds."""

    def __init__(self, ptq: float, gains: dict[str, float], costs: dict[str, float]) -> None:
        self.ptq, self.gains, self.costs, self.calls = ptq, gains, costs, []

    def score(self, kept: list[str]) -> tuple[float, list[float]]:
        self.calls.append(list(kept))
        value = self.ptq + sum(self.gains[m] for m in kept)
        return value, [value - 0.01, value + 0.01]

    def price(self, kept: list[str]) -> float:
        return 10.0 + sum(self.costs[m] for m in kept)


def test_within_budget_it_stops_after_one_evaluation():
    fake = Fake(0.895, {"a": 0.0, "b": 0.0}, {"a": 1, "b": 1})
    out = search(FLOAT, 0.01, ["a", "b"], fake.score, fake.price)
    assert fake.calls == [[]] and out.met and out.steps[out.chosen].kept_float == []


def test_over_budget_it_keeps_the_module_the_measurement_blames_not_the_sqnr_guess():
    # SQNR ranks a first, but keeping b float is what recovers the accuracy
    fake = Fake(0.85, {"a": 0.0, "b": 0.05, "c": 0.0, "d": 0.0}, {"a": 1, "b": 5, "c": 1, "d": 1})
    out = search(FLOAT, 0.01, ["a", "b", "c", "d"], fake.score, fake.price)
    assert out.met and out.steps[out.chosen].kept_float == ["b"]
    assert len(fake.calls) <= MAX_EVALUATIONS


def test_gainers_are_combined_by_gain_per_millisecond_until_the_drop_fits():
    # a and b each recover half; c recovers as much as a but costs far more: a and b are kept
    gains = {"a": 0.03, "b": 0.03, "c": 0.03, "d": 0.0, "e": 0.0}
    costs = {"a": 1, "b": 2, "c": 50, "d": 1, "e": 1}
    fake = Fake(0.84, gains, costs)
    out = search(FLOAT, 0.01, ["c", "a", "b", "d", "e"], fake.score, fake.price)
    assert out.met and sorted(out.steps[out.chosen].kept_float) == ["a", "b"]
    assert fake.calls == [[], ["c"], ["a"], ["b"], ["a", "b"]]


def test_the_cheapest_plan_that_fits_is_chosen():
    fake = Fake(0.85, {"a": 0.06, "b": 0.06, "c": 0.0}, {"a": 9, "b": 2, "c": 1})
    out = search(FLOAT, 0.01, ["a", "b", "c"], fake.score, fake.price)
    assert out.met and out.steps[out.chosen].kept_float == ["b"]


@pytest.mark.parametrize("budget", [0.0, 0.001])
def test_an_impossible_budget_ends_with_the_best_plan_stated_as_missed(budget):
    names = [f"m{i}" for i in range(12)]
    fake = Fake(0.80, {m: 0.004 for m in names}, {m: 1 for m in names})
    out = search(FLOAT, budget, names, fake.score, fake.price)
    assert not out.met and len(fake.calls) == MAX_EVALUATIONS
    best = max(s.map50 for s in out.steps)
    assert out.steps[out.chosen].map50 == best
    assert "MISSES the budget" in out.line() and "QAT" in out.line()


def test_a_missed_budget_pays_no_latency_for_a_gain_within_half_the_budget():
    # nothing fits; b gains 0.004 (< half the budget) for 5 ms: PTQ as planned goes to QAT
    fake = Fake(0.80, {"a": 0.0, "b": 0.004, "c": 0.0}, {"a": 1, "b": 5, "c": 1})
    out = search(FLOAT, 0.01, ["a", "b", "c"], fake.score, fake.price)
    assert not out.met and out.steps[out.chosen].kept_float == []
    # a gain beyond half the budget is worth its milliseconds
    fake = Fake(0.80, {"a": 0.0, "b": 0.006, "c": 0.0}, {"a": 1, "b": 5, "c": 1})
    out = search(FLOAT, 0.01, ["a", "b", "c"], fake.score, fake.price)
    assert not out.met and "b" in out.steps[out.chosen].kept_float


def test_every_quantized_module_is_never_kept_float():
    fake = Fake(0.80, {"a": 0.01, "b": 0.01}, {"a": 1, "b": 1})
    search(FLOAT, 0.0, ["a", "b"], fake.score, fake.price)
    assert all(len(kept) < 2 for kept in fake.calls)


def test_the_record_says_what_each_step_kept_and_scored():
    fake = Fake(0.85, {"a": 0.06, "b": 0.0}, {"a": 3, "b": 1})
    record = search(FLOAT, 0.01, ["a", "b"], fake.score, fake.price).as_dict()
    assert record["kept_float"] == ["a"] and record["evaluations"] == 2 and record["met"]
    assert record["steps"][1]["latency_ms"] == 13.0
    assert record["map50_drop"] == pytest.approx(FLOAT - 0.91)
