"""The engine race: each engine's int8 artifact and the float Inductor one, timed in one process."""

import json
import subprocess
import sys

import pytest
import yaml

from qdet.core.cpu import cpu_flags
from tests.helpers import DEFAULTS, REPO, TINY_MODEL, merge


@pytest.mark.slow  # three AOTInductor folders and a TorchScript file (~3 min)
def test_race_times_both_engines_and_the_float_inductor_row_with_intervals(tmp_path):
    import dataclasses

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(DEFAULTS, {"model": dataclasses.asdict(TINY_MODEL)})))
    out = tmp_path / "engines.json"
    done = subprocess.run(
        [sys.executable, "-m", "qdet.tools.compare_engines", "resnet18", "--params", str(params),
         "--rounds", "6", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    row = result["resnet18"]
    assert {"fx_p50_ms", "pt2e_p50_ms", "float_inductor_p50_ms"} <= set(row)
    ratio = row["pt2e_speedup_vs_fx"]
    assert ratio == pytest.approx(row["fx_p50_ms"] / row["pt2e_p50_ms"])
    low, high = row["pt2e_speedup_vs_fx_ci95"]
    assert low < high and row["fx_speedup_vs_pt2e_ci95"] != [low, high]  # resampled, each way
    assert row["fx_speedup_vs_pt2e"] == pytest.approx(1 / ratio)
    # without VNNI, FX again with the kernels it runs on a VNNI CPU (oneDNN's, as PT2E's)
    assert ("fx_onednn_p50_ms" in row) == ("avx512_vnni" not in cpu_flags())
    if "fx_onednn_p50_ms" in row:
        assert row["pt2e_speedup_vs_fx_onednn"] == pytest.approx(row["fx_onednn_p50_ms"] / row["pt2e_p50_ms"])
        assert "fx_speedup_vs_fx_onednn" in row  # what the x86 engine's FBGEMM choice costs here
    assert result["environment"]["threads"] == 2 and "resnet18:" in done.stderr  # the console is stderr
