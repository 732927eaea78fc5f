"""Which variant the registry alias goes to: the gate and the rows it reads."""

import json

import pytest

from qdet.serving.registry import Candidate, candidates, choose_champion, model_name


def _bench(float_row: str) -> dict:
    rows = {float_row: (100.0, 1.0), "ptq": (40.0, 2.5), "qat": (42.0, 2.4)}
    return {
        k: {"latency_ms_p50": ms, "speedup_vs_best_float": s, "speedup": s * 1.5}
        for k, (ms, s) in rows.items()
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
    (tmp_path / "variants.json").write_text(
        json.dumps({"engine": engine, "float": float_row, "variants": files})
    )
    maps = {
        "float": {"map50": 0.8},
        "ptq": {"map50": 0.79, "map50_drop": 0.01},
        "qat": {"map50": 0.8, "map50_drop": 0.0},
    }
    found = {c.variant: c for c in candidates(tmp_path, maps, _bench(float_row))}
    assert set(found) == {"float", "ptq", "qat"}  # the ONNX Runtime peers are never candidates
    assert found["float"].artifact == tmp_path / files[float_row]
    assert found["ptq"].speedup == 2.5 and found["qat"].latency_ms == 42.0


def test_gate_rejects_too_slow_and_too_inaccurate_and_names_why():
    rows = [
        Candidate("float", None, 0.80, 0.0, 1.0, 100.0),
        Candidate("ptq", None, 0.70, 0.10, 2.5, 40.0),
        Candidate("qat", None, 0.79, 0.01, 2.4, 42.0),
    ]
    champion, reasons = choose_champion(rows, max_map_drop=0.03, min_speedup=1.5)
    assert champion.variant == "qat"
    assert reasons == ["float: speedup vs best float 1.00 < 1.5", "ptq: mAP@.5 drop 0.100 > 0.03"]
    champion, reasons = choose_champion(rows, max_map_drop=0.03, min_speedup=3.0)
    assert champion is None and len(reasons) == 3


def test_model_name_auto():
    assert model_name("auto", "gtsdb", "resnet18") == "qdet-gtsdb-resnet18"
    assert model_name("signs", "gtsdb", "resnet18") == "signs"
