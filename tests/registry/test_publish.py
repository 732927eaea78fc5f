"""Which variant the registry alias goes to: the gate and the rows it reads."""

import json

import pytest

from qdet.registry.champion import Candidate, choose_champion
from qdet.registry.publish import candidates, model_name


def _bench(float_row: str) -> dict:
    rows = {float_row: (100.0, 1.0), "ptq": (40.0, 2.5), "qat": (42.0, 2.4), "ov_int8": (30.0, 3.3)}
    return {"best_float": float_row, "best_int8_peer": "ov_int8"} | {
        "variants": {
            k: {
                "latency_ms_p50": ms,
                "speedup_vs_best_float": s,
                "speedup_vs_best_float_ci95": [s - 0.1, s + 0.1],
                "speedup_vs_float_eager": s * 1.5,
            }
            for k, (ms, s) in rows.items()
        }
    }


@pytest.mark.parametrize(
    ("engine", "float_row", "suffix"), [("pt2e", "float_inductor", ""), ("fx", "float_ts", ".ts")]
)
def test_candidates_read_the_manifest_and_the_speedup_vs_best_float(tmp_path, engine, float_row, suffix):
    files = {
        float_row: f"float{suffix}" if suffix else float_row,
        "ptq": f"ptq{suffix}",
        "qat": f"qat{suffix}",
    }
    graphs = {"ptq": "g1", "qat": "g1"}
    (tmp_path / "variants.json").write_text(
        json.dumps({"engine": engine, "float": float_row, "variants": files, "graphs": graphs})
    )
    maps = {
        "float_eager": {"map50": 0.8},
        float_row: {"map50": 0.8, "map50_drop": 0.0},
        "ptq": {"map50": 0.79, "map50_drop": 0.01},
        "qat": {"map50": 0.8, "map50_drop": 0.0},
    }
    found = {c.variant: c for c in candidates(tmp_path, maps, _bench(float_row))}
    assert set(found) == {"float", "ptq", "qat"}  # the peers are never candidates
    assert found["float"].artifact == tmp_path / files[float_row]
    assert found["ptq"].speedup == 2.5 and found["qat"].latency_ms == 42.0
    assert found["ptq"].speedup_ci95 == [2.4, 2.6]
    assert found["ptq"].graph == found["qat"].graph != found["float"].graph


def _candidate(variant, map50, speedup, ci, graph=None, drop=None):
    drop = 0.80 - map50 if drop is None else drop
    return Candidate(variant, None, map50, drop, speedup, ci, 100.0 / speedup, graph or variant)


FLOAT = _candidate("float", 0.80, 1.0, [0.95, 1.05])


def test_gate_rejects_too_slow_and_too_inaccurate_and_names_why():
    rows = [
        FLOAT,
        _candidate("ptq", 0.70, 2.5, [2.4, 2.6]),
        _candidate("qat", 0.79, 2.4, [2.3, 2.5]),
    ]
    champion, why = choose_champion(rows, max_map_drop=0.03, min_speedup=1.5)
    assert champion.variant == "qat"
    assert why["float"] == "fails the gate: speedup vs best float 1.00 < 1.5"
    assert why["ptq"] == "fails the gate: mAP@.5 drop 0.100 > 0.03"
    assert why["qat"].startswith("champion:")
    champion, why = choose_champion(rows, max_map_drop=0.03, min_speedup=3.0)
    assert champion is None and all(w.startswith("fails the gate") for w in why.values())
    assert len(why) == 3


def test_a_drop_exactly_at_the_limit_passes_and_just_above_fails():
    at = _candidate("qat", 0.77, 2.4, [2.3, 2.5], drop=0.03)
    assert choose_champion([at], 0.03, 1.5)[0] is at
    above = _candidate("qat", 0.77, 2.4, [2.3, 2.5], drop=0.0301)
    assert choose_champion([above], 0.03, 1.5)[0] is None


def test_the_more_accurate_wins_when_speeds_overlap():
    ptq = _candidate("ptq", 0.78, 2.5, [2.3, 2.7], graph="a")
    qat = _candidate("qat", 0.79, 2.3, [2.1, 2.45], graph="b")
    champion, why = choose_champion([FLOAT, ptq, qat], 0.03, 1.5)
    assert champion is qat
    assert "not faster beyond noise" in why["ptq"]


def test_a_faster_variant_wins_only_beyond_noise():
    ptq = _candidate("ptq", 0.78, 3.0, [2.9, 3.1], graph="a")
    qat = _candidate("qat", 0.79, 2.3, [2.2, 2.4], graph="b")
    champion, why = choose_champion([FLOAT, ptq, qat], 0.03, 1.5)
    assert champion is ptq
    assert why["qat"].startswith("passes the gate; ptq is faster beyond noise")


def test_equal_graphs_are_never_split_by_noise():
    """PTQ and QAT share the int8 graph: disjoint timing intervals are noise, accuracy decides."""
    ptq = _candidate("ptq", 0.78, 3.0, [2.9, 3.1], graph="same")
    qat = _candidate("qat", 0.79, 2.3, [2.2, 2.4], graph="same")
    for order in ([FLOAT, ptq, qat], [qat, ptq, FLOAT]):
        champion, why = choose_champion(order, 0.03, 1.5)
        assert champion is qat
        assert "same int8 graph as qat" in why["ptq"]


def test_model_name_auto():
    assert model_name("auto", "gtsdb", "resnet18") == "qdet-gtsdb-resnet18"
    assert model_name("signs", "gtsdb", "resnet18") == "signs"
