"""The alias moves only to a model that beats the one holding it, on the same evaluation."""

from qdet.registry.champion import Candidate, Holder, challenge, choose_champion

DATA = "a" * 32


def _challenger(map50=0.80, ci=(0.78, 0.82), speedup=2.5, speed_ci=(2.4, 2.6), md5="new"):
    return Candidate("qat", None, map50, 0.0, speedup, list(speed_ci), 40.0, "g", list(ci), md5)


def _holder(map50=0.80, ci=(0.78, 0.82), speedup=2.5, speed_ci=(2.4, 2.6), evaluation=DATA, md5="old"):
    return Holder("3", "qat", map50, list(ci), speedup, list(speed_ci), evaluation, md5)


def test_the_first_model_takes_the_alias():
    assert challenge(_challenger(), DATA, None) == (True, "no version holds the alias yet")


def test_a_weaker_or_equal_challenger_leaves_the_alias():
    took, why = challenge(_challenger(map50=0.70, ci=(0.68, 0.72)), DATA, _holder())
    assert not took and why.startswith("less accurate than version 3 (qat) beyond noise")
    took, why = challenge(_challenger(map50=0.81, ci=(0.79, 0.83)), DATA, _holder())
    assert not took and why.startswith("not better than version 3 (qat) beyond noise")


def test_more_accurate_beyond_noise_or_as_accurate_and_faster_takes_it():
    took, why = challenge(_challenger(map50=0.86, ci=(0.84, 0.88)), DATA, _holder())
    assert took and why == "more accurate than version 3 (qat) beyond noise: mAP@.5 0.860 vs 0.800"
    took, why = challenge(_challenger(speedup=3.2, speed_ci=(3.1, 3.3)), DATA, _holder())
    assert took and "faster beyond noise (x3.20 vs x2.50 the best float)" in why
    took, _ = challenge(_challenger(speedup=2.7, speed_ci=(2.55, 2.8)), DATA, _holder())
    assert not took  # faster, but within noise


def test_other_data_or_the_same_artifact_keeps_the_alias():
    took, why = challenge(_challenger(map50=0.95, ci=(0.94, 0.96)), DATA, _holder(evaluation="b" * 32))
    assert not took and "scored on other data (evaluation bbbbbbbb vs aaaaaaaa)" in why
    took, why = challenge(_challenger(md5="same"), DATA, _holder(md5="same"))
    assert not took and why == "version 3 (qat) is this same artifact: the alias stays where it is"


def test_an_exact_tie_in_one_run_is_not_decided_by_noise_in_latency():
    ptq = Candidate("ptq", None, 0.80, 0.0, 2.5, [2.4, 2.6], 41.0, "g")
    qat = Candidate("qat", None, 0.80, 0.0, 2.6, [2.5, 2.7], 39.0, "g")  # same graph, "faster"
    assert choose_champion([ptq, qat], 0.03, 1.5)[0] is ptq
    assert choose_champion([qat, ptq], 0.03, 1.5)[0] is qat  # the order listed decides, not timing
