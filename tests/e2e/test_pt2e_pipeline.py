"""The pipeline with quant.engine: pt2e, for real: dvc repro on tiny data, AOTInductor artifacts,
no torch deprecation warning in the log, the champion served from the registry without qdet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qdet.tracking import default_uri
from qdet.variants.table import DEPLOYED, VARIANTS
from tests.e2e.repos import env, make_repo, run, torch_deprecations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("pt2e"), {"quant": {"engine": "pt2e"}})
    done = run(["dvc", "repro"], path)
    (path / "repro.log").write_text(done.stdout + done.stderr)
    return path


def test_artifacts_are_compiled_folders_not_torchscript(repo):
    export = repo / "models" / "export"
    manifest = json.loads((export / "variants.json").read_text())
    assert manifest["engine"] == "pt2e" and manifest["float"] == "float_inductor"
    assert not list(export.glob("*.ts"))
    for variant in ("float_inductor", "ptq", "qat"):
        assert (export / variant / "backbone.pt2").is_file() and (
            export / variant / "aot_detector.py"
        ).is_file()
    convert = json.loads((repo / "metrics" / "convert.json").read_text())
    assert convert["qat_compile_seconds"] > 0 and convert["ptq_size_mb"] < convert["float_inductor_size_mb"]


# Deprecations that are not a call of ours, each named with why. torchao 0.18 registers its
# KernelPreference enum with torch's pytree when it is imported; torch 2.14 logs that
# register_constant() on an Enum is deprecated (to logs/, at every import of torchao).
UPSTREAM = ("Calling register_constant() on Enum subclasses is deprecated",)


def test_no_torch_deprecation_warning_on_the_console_or_in_the_logs(repo):
    console = (repo / "repro.log").read_text()
    assert [line for line in console.splitlines() if "deprecat" in line.lower()] == []
    found = torch_deprecations(repo, console)
    assert [line for line in found if not any(known in line for known in UPSTREAM)] == []


def test_metrics_have_both_speedups_and_the_peers(repo):
    bench = json.loads((repo / "metrics" / "benchmark.json").read_text())["variants"]
    assert {
        "float_eager",
        "float_inductor",
        "ptq",
        "qat",
        "ort_fp32",
        "ort_int8",
        "ov_fp32",
        "ov_int8",
    } <= set(bench)
    assert "float_ts" not in bench
    assert all(
        "speedup_vs_best_float" in row and "speedup_vs_best_int8_peer" in row for row in bench.values()
    )
    ev = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(ev) == set(bench)
    breakdown = json.loads((repo / "reports" / "breakdown.json").read_text())["breakdown_ms"]
    assert set(breakdown) == {"float_eager", "float_inductor", "int8"}
    assert {"backbone", "rpn_head", "roi"} <= set(breakdown["int8"])  # each package timed apart


def test_registered_pt2e_model_predicts_without_qdet(repo, tmp_path):
    reg = json.loads((repo / "metrics" / "register.json").read_text())
    assert len(reg["versions"]) == 3
    image = next((repo / "data" / "processed" / "images").iterdir())
    code = (
        "import sys; sys.modules['qdet'] = None\n"
        "import mlflow\n"
        f"mlflow.set_tracking_uri('{default_uri(repo)}')\n"
        f"m = mlflow.pyfunc.load_model('models:/{reg['model_name']}/{reg['versions']['qat']}',\n"
        f"    model_config={{'image_dir': {str(image.parent)!r}}})\n"
        f"df = m.predict({{'path': [{str(image)!r}]}})\n"
        "print(list(df.columns))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'class_name', 'label', 'score', 'x_min'" in done.stdout


def test_deploy_rows_are_scored_timed_and_close_to_their_torch_artifact(repo):
    bench = json.loads((repo / "metrics" / "benchmark.json").read_text())
    ev = json.loads((repo / "metrics" / "eval.json").read_text())
    for name in DEPLOYED:
        source = VARIANTS[name].source
        assert abs(ev[name]["map50"] - ev[source]["map50"]) <= 0.05, name  # tiny data: 0.5 pt is a box
        assert bench["variants"][name]["latency_ms_p50"] > 0 and name in bench["throughput"]
    assert "qdet's int8 where users deploy" in (repo / "reports" / "results.md").read_text()


LOADER = """
import sys
sys.modules["torch"] = None  # import torch fails from here on
sys.path.insert(0, sys.argv[1])
from qdet_deploy import Detector
for runtime in ("onnxruntime", "openvino"):
    print(runtime, len(Detector(sys.argv[1], runtime).predict(sys.argv[2], threshold=0.0)))
"""


def test_registered_deploy_files_predict_where_torch_cannot_be_imported(repo, tmp_path):
    reg = json.loads((repo / "metrics" / "register.json").read_text())
    image = next((repo / "data" / "processed" / "images").iterdir())
    uri = f"models:/{reg['model_name']}/{reg['versions']['qat']}"
    download = (
        "import sys; sys.modules['qdet'] = None; sys.modules['torch'] = None\n"
        "import mlflow\n"
        f"mlflow.set_tracking_uri('{default_uri(repo)}')\n"
        f"print(mlflow.artifacts.download_artifacts('{uri}', dst_path='{tmp_path}'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", download], env=env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next(tmp_path.rglob("deploy.json")).parent
    assert folder.name == "deploy" and (folder / "openvino" / "model.bin").is_file()
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(folder), str(image)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["onnxruntime", "openvino"]
