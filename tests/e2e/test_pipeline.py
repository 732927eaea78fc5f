"""The real pipeline: dvc repro on tiny synthetic data, real MLflow (sqlite), registry, predict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import mlflow
import pytest
import torch
import yaml

from qdet.core.checkpoint import load_checkpoint
from qdet.core.cpu import bf16_support
from qdet.measure.accuracy import coco_evaluate
from qdet.registry.publish import registered_rows
from qdet.tracking import default_uri
from tests.e2e.repos import commit, env, make_repo, run, stages_run, torch_deprecations
from tests.helpers import merge, stage_cmd


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("pipeline"))
    done = run(["dvc", "repro"], path)
    order = stages_run(done.stdout)
    assert order[:3] == ["download", "preprocess", "train"]
    assert order[-4:] == ["evaluate", "benchmark", "register", "report"]
    assert set(order[3:-4]) == {"calibrate", "search", "qat", "control", "convert", "peers"}
    return path


def _metrics(repo, name):
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def test_metrics_cover_every_variant_and_peer(repo):
    peers = json.loads((repo / "models" / "peers" / "peers.json").read_text())
    bf16 = bf16_support() is None
    expected_peers = {"ort_fp32", "ort_int8", "ov_fp32", "ov_int8"} | (
        {"ov_bf16", "float_bf16"} if bf16 else set()
    )
    assert set(peers["variants"]) == expected_peers
    if not bf16:  # left out with the reason, on this CPU
        assert set(peers["skipped"]) == {"ov_bf16", "float_bf16"}
        assert all("no bf16 instructions" in why for why in peers["skipped"].values())
    assert peers["details"]["ov_int8_route"] == "nncf"  # OpenVINO's own int8, not ORT's file
    assert peers["details"]["ort_calibration"] in ("minmax", "entropy", "percentile")
    ev = _metrics(repo, "eval")
    rows = {"float_eager", "float_ts", "float_inductor", "ptq", "qat"} | expected_peers
    assert set(ev) == rows  # every row its own mAP, float eager the reference
    for v in rows - {"float_eager"}:
        assert ev[v]["map50_drop"] == pytest.approx(ev["float_eager"]["map50"] - ev[v]["map50"])
    metrics = _metrics(repo, "benchmark")
    bench = metrics["variants"]
    assert set(bench) == rows
    for name, row in bench.items():
        assert row["latency_ms_p90"] >= row["latency_ms_p50"] > 0
        assert row["map50"] == ev[name]["map50"]
    eager = bench["float_eager"]["latency_ms_p50"]
    for row in bench.values():
        assert row["speedup_vs_float_eager"] == pytest.approx(eager / row["latency_ms_p50"])
    floats = [v for v in bench if v not in ("ptq", "qat", "ort_int8", "ov_int8")]
    best_float = min(floats, key=lambda v: bench[v]["latency_ms_p50"])
    best_peer = min(("ort_int8", "ov_int8"), key=lambda v: bench[v]["latency_ms_p50"])
    assert (metrics["best_float"], metrics["best_int8_peer"]) == (best_float, best_peer)
    for row in bench.values():
        assert row["speedup_vs_best_float"] == pytest.approx(
            bench[best_float]["latency_ms_p50"] / row["latency_ms_p50"]
        )
        peer = bench[best_peer]["latency_ms_p50"]
        assert row["speedup_vs_best_int8_peer"] == pytest.approx(peer / row["latency_ms_p50"])
    assert bench["qat"]["size_ratio"] > 3.5
    assert _metrics(repo, "convert")["qat_size_ratio"] > 3.5
    # paired resampling: the reference against itself moves by nothing, the others by something
    assert bench["float_eager"]["speedup_vs_float_eager_ci95"] == [1.0, 1.0]
    for name, row in bench.items():
        keys = ["latency_ms_p50"] + ["speedup_vs_float_eager"] * (name != "float_eager")
        for key in keys:
            lo, hi = row[f"{key}_ci95"]
            assert lo < hi, (name, key)
    # steady state, the int8 floor and throughput with every core busy (issue 39)
    assert metrics["regime"]["timed_calls_per_block"] == 2 and metrics["regime"]["rounds"] == 2
    floor = metrics["floor"]
    assert floor["int8_ms"] == pytest.approx(sum(floor["parts_ms"].values())) and floor["int8_ms"] > 0
    for name in ("ptq", "qat", "ort_int8", "ov_int8"):
        assert bench[name]["x_floor"] == pytest.approx(bench[name]["latency_ms_p50"] / floor["int8_ms"])
    assert "x_floor" not in bench["float_eager"]
    assert set(metrics["throughput"]) == {"ptq", "qat", "ort_int8", "ov_int8", best_float}
    assert metrics["throughput"]["ov_int8"]["setting"].startswith("OpenVINO THROUGHPUT hint")
    assert all(row["img_per_s"] > 0 for row in metrics["throughput"].values())
    breakdown = json.loads((repo / "reports" / "breakdown.json").read_text())
    assert set(breakdown["breakdown_ms"]) == {"float_eager", "float_inductor", "int8"}
    environment = breakdown["environment"]
    assert environment["threads"] == 2 and environment["openvino"] != "not installed"
    assert environment["cpu"] and environment["cpu_family"]


def test_coco_files_rescore_to_the_reported_map(repo):
    """... on the test split: the images scored are test.csv's, none of train's or valid's."""
    import csv
    import json

    def names(split: str) -> set[str]:
        with open(repo / "data" / "processed" / f"{split}.csv") as f:
            return {row["file_name"] for row in csv.DictReader(f)}

    scored = {i["file_name"] for i in json.loads((repo / "eval" / "coco_gt.json").read_text())["images"]}
    assert scored == names("test") and not scored & (names("train") | names("valid"))
    reported = _metrics(repo, "eval")
    for variant in ("float_eager", "ptq", "qat", "ov_int8"):
        stats, _ = coco_evaluate(repo / "eval" / "coco_gt.json", repo / "eval" / f"detections_{variant}.json")
        assert stats["map"] == pytest.approx(reported[variant]["map"], abs=1e-6)
        assert stats["map50"] == pytest.approx(reported[variant]["map50"], abs=1e-6)


def _without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(t in k for t in ("seconds", "per_s", "time"))}


@pytest.mark.slow
def test_same_params_and_seed_give_identical_models_and_metrics(repo, tmp_path):
    """Run to run on one CPU: float and int8 training, metrics and detections are bit-equal."""
    again = make_repo(tmp_path / "again")
    run(["dvc", "repro", "evaluate"], again)
    for name in ("train", "qat", "eval"):
        assert _without_timings(_metrics(again, name)) == _without_timings(_metrics(repo, name)), name
    for variant in ("float_eager", "ptq", "qat"):
        name = f"detections_{variant}.json"
        assert (again / "eval" / name).read_bytes() == (repo / "eval" / name).read_bytes(), name


def test_the_fx_engine_logs_torch_deprecations_where_the_pt2e_test_looks(repo):
    """FX and quint8 are deprecated upstream: its logs must say so, or the PT2E pipeline's
    'no deprecation' test could not fail."""
    assert torch_deprecations(repo, "")


def test_second_repro_is_a_noop(repo):
    done = run(["dvc", "repro"], repo)
    assert stages_run(done.stdout) == ["download"]  # always checks its source; finds it unchanged
    assert "unchanged (same source content)" in done.stderr


def test_quantized_modules_and_sensitivity_are_reported(repo):
    report = json.loads((repo / "reports" / "quantized_modules.json").read_text())
    assert any(m.startswith("roi_heads.box_head.fc6") for m in report["int8_modules"])
    rows = (repo / "metrics" / "sensitivity.csv").read_text().splitlines()
    assert rows[0] == "module,sqnr_db" and len(rows) > 20


def test_the_search_records_its_steps_and_convert_gets_its_plan(repo):
    """The budget search ran on the default ``quant.search: auto``: one step per evaluation,
    the verdict follows the budget, and convert's observer state is the chosen plan's."""
    record = _metrics(repo, "quant_search")
    steps = record["steps"]
    assert record["search"] == "auto" and record["evaluations"] == len(steps) <= 7
    assert steps[0]["kept_float"] == [] and steps[0]["why"] == "PTQ as planned"
    drops = [record["reference_map50"] - s["map50"] for s in steps]
    assert record["met"] == any(d <= record["max_drop"] + 1e-9 for d in drops)
    assert (len(steps) == 1) == (drops[0] <= record["max_drop"] + 1e-9)  # stops at once when PTQ fits
    chosen = steps[record["chosen"]]
    assert record["kept_float"] == chosen["kept_float"]
    for s in steps:
        lo, hi = s["map50_ci95"]
        assert lo <= s["map50"] <= hi and s["latency_ms"] > 0
    skip = load_checkpoint(repo / "models" / "ptq_search.pt", "")["plan"]["skip"]
    assert set(chosen["kept_float"]) <= set(skip)
    assert "### Accuracy to a budget" in (repo / "reports" / "results.md").read_text()


def test_mlflow_has_one_finished_parent_with_stage_children(repo):
    mlflow.set_tracking_uri(default_uri(repo))
    exp = mlflow.get_experiment_by_name("qdet")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    stages = {r.data.tags["qdet.stage"] for r in runs if "qdet.stage" in r.data.tags}
    assert stages >= {"train", "calibrate", "search", "qat", "convert", "evaluate", "benchmark", "register"}
    assert all(r.info.status == "FINISHED" for r in runs)
    parent = parents[0]
    assert parent.data.tags["backbone"] == "resnet18" and parent.data.tags["git_commit"] != "unknown"
    assert "qat_map50" in parent.data.metrics and "qat_speedup_vs_best_float" in parent.data.metrics
    assert "qat_speedup_vs_best_int8_peer" in parent.data.metrics  # vs OpenVINO / ONNX Runtime int8
    children = [r for r in runs if r is not parent]
    assert not any(set(parent.data.metrics) & set(c.data.metrics) for c in children)  # no figure twice
    client = mlflow.MlflowClient()
    assert {"map_vs_latency.png", "pr_curves.png", "train_curves.png", "qat_curves.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    assert parent.data.tags["mlflow.source.name"] == "dvc repro"
    benchmark = next(r for r in runs if r.data.tags.get("qdet.stage") == "benchmark")
    assert "qat_latency_ms_p90" in benchmark.data.metrics  # the stage's detail
    assert benchmark.info.end_time - benchmark.info.start_time > 2000  # its timing, not its logging
    train = next(r for r in runs if r.data.tags.get("qdet.stage") == "train")
    history = mlflow.MlflowClient().get_metric_history(train.info.run_id, "loss")
    assert [m.step for m in history] == [1]


def test_models_view_compares_every_variant_and_the_parent_says_who_won(repo):
    mlflow.set_tracking_uri(default_uri(repo))
    exp = mlflow.get_experiment_by_name("qdet")
    models = {m.name: m for m in mlflow.search_logged_models([exp.experiment_id], output_format="list")}
    bench = _metrics(repo, "benchmark")["variants"]
    registered = {"model_float", "model_ptq", "model_qat"}
    references = {f"ref_{v}" for v in bench if v not in ("ptq", "qat", "float_ts", "float_inductor")}
    assert registered <= set(models) and references <= set(models), sorted(models)
    for name in registered | references:  # one value per figure: no other model's figures linked in
        keys = [m.key for m in models[name].metrics]
        assert len(keys) == len(set(keys)), (name, sorted(keys))
    qat = {m.key: m.value for m in models["model_qat"].metrics}
    assert qat["map50"] == pytest.approx(bench["qat"]["map50"], rel=1e-3)
    assert qat["speedup_vs_best_float"] == pytest.approx(bench["qat"]["speedup_vs_best_float"], rel=1e-3)
    assert {"speedup_vs_float_eager", "latency_ms_p50_ci95_lo", "map50_drop", "size_mb"} <= set(qat)
    assert qat["x_floor"] == pytest.approx(bench["qat"]["x_floor"], rel=1e-3)  # against its int8 floor
    ov = {m.key: m.value for m in models["ref_ov_fp32"].metrics}
    assert ov["latency_ms_p50"] == pytest.approx(bench["ov_fp32"]["latency_ms_p50"], rel=1e-3)
    assert models["ref_ov_fp32"].tags["qdet.registered"].startswith("no")
    model_name = _metrics(repo, "register")["model_name"]
    listed = json.loads(models["model_qat"].tags["mlflow.modelVersions"])  # the UI's "Registered models"
    assert [v["name"] for v in listed] == [model_name]
    assert "mlflow.modelVersions" not in models["ref_ov_fp32"].tags
    (parent,) = [
        r for r in mlflow.search_runs([exp.experiment_id], output_format="list")
        if "mlflow.parentRunId" not in r.data.tags
    ]  # fmt: skip
    champion = _metrics(repo, "register")["champion"]
    assert parent.data.tags["champion"] == champion
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(f"**champion: {champion}**") and "| ov_fp32 |" in note and "http" not in note
    summary = _metrics(repo, "summary")
    assert summary["champion"] == champion and summary["float_map50"] == pytest.approx(
        _metrics(repo, "eval")["float_eager"]["map50"], rel=1e-3
    )
    held = registered_rows(repo / "models" / "export")[champion if champion != "none" else "qat"]
    x_floor = _metrics(repo, "benchmark")["variants"][held].get("x_floor")  # int8 rows only
    assert summary.get("x_floor") == (x_floor and pytest.approx(x_floor, rel=1e-3))  # against its floor
    shown = run(["dvc", "metrics", "show"], repo).stdout
    assert "summary.json" in shown and "eval.json" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 200, shown


def test_champion_follows_the_rule_and_every_variant_has_its_reason(repo):
    """register.json's champion is what the rule gives on the run's own metrics; PTQ and QAT
    share one int8 graph, so speed noise cannot split them."""
    from qdet.registry.champion import choose_champion
    from qdet.registry.publish import candidates

    reg = _metrics(repo, "register")
    assert set(reg["why"]) == {"float", "ptq", "qat"}
    assert reg["why"][reg["champion"]].startswith("champion:")
    params = yaml.safe_load((repo / "params.yaml").read_text())["register"]
    found = candidates(repo / "models" / "export", _metrics(repo, "eval"), _metrics(repo, "benchmark"))
    champion, _ = choose_champion(found, params["max_map_drop"], params["min_speedup"])
    assert champion.variant == reg["champion"]
    graphs = json.loads((repo / "models" / "export" / "variants.json").read_text())["graphs"]
    assert graphs["ptq"] == graphs["qat"]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    page = client.get_registered_model(reg["model_name"]).description
    version = reg["versions"][reg["champion"]]
    assert (
        f"version {version} ({reg['champion']})" in page and f"models:/{reg['model_name']}@champion" in page
    )
    assert client.get_model_version(reg["model_name"], version).description.startswith(
        f"**{reg['champion']}**"
    )


def test_registered_champion_predicts_in_a_fresh_process(repo, tmp_path):
    reg = _metrics(repo, "register")
    assert reg["champion"] in ("float", "ptq", "qat") and len(reg["versions"]) == 3
    image = next((repo / "data" / "processed" / "images").iterdir())
    code = (
        "import sys; sys.modules['qdet'] = None\n"
        "import mlflow\n"
        f"mlflow.set_tracking_uri('{default_uri(repo)}')\n"
        f"m = mlflow.pyfunc.load_model('models:/{reg['model_name']}@champion',\n"
        f"    model_config={{'image_dir': {str(image.parent)!r}}})\n"
        f"df = m.predict({{'path': [{str(image)!r}]}})\n"
        "print(list(df.columns)); print(len(df))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'class_name', 'label', 'score', 'x_min'" in done.stdout


def _predict(repo, *args, cwd=None, env_extra=None):
    e = env() | (env_extra or {})
    return subprocess.run(
        ["qdet-predict", *map(str, args)], cwd=cwd or repo, env=e, capture_output=True, text=True, timeout=600
    )


def test_predict_goes_on_past_bad_inputs_and_keeps_every_output(repo, tmp_path):
    from PIL import Image

    images = tmp_path / "in"
    (images / "a").mkdir(parents=True)
    (images / "b").mkdir()
    source = sorted((repo / "data" / "processed" / "images").iterdir())[0]
    picture = Image.open(source).convert("RGB")
    picture.save(images / "a" / "street.jpg")
    picture.save(images / "a" / "street.png")
    picture.save(images / "b" / "street.png")
    Image.new("RGB", (4000, 1)).save(images / "a" / "thin.png")
    Image.new("L", (9000, 9000)).save(images / "b" / "huge.png")
    (images / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    done = _predict(
        repo,
        repo / "models" / "export" / "qat.ts",
        images,
        "--out",
        out,
        "--threshold",
        "0.0",
        "--max-pixels",
        "50000000",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "broken.png: cannot read image: not a readable image" in done.stderr
    assert (
        "huge.png: cannot read image: 9000x9000 pixels (81 megapixels) is above the limit of 50"
        in done.stderr
    )
    assert "3 images" in done.stderr and "3 failed" in done.stderr
    assert "warm-up calls" in done.stderr and "p90" in done.stderr
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/street.jpg.pred.png", "a/street.png.pred.png", "b/street.png.pred.png"]
    assert (out / "detections.csv").read_text().startswith("file,class_name,label,score,x_min")
    latency = (out / "latency.csv").read_text().splitlines()
    assert latency[0] == "file,latency_ms,detections" and len(latency) == 4


def test_predict_checks_inputs_first_and_times_one_image_steadily(repo, tmp_path):
    (tmp_path / "empty").mkdir()
    artifact = repo / "models" / "export" / "qat.ts"
    out = tmp_path / "out"
    done = _predict(repo, artifact, tmp_path / "empty", tmp_path / "gone.jpg", "--out", out)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "empty: no image or video inside" in done.stderr and "gone.jpg: no such file" in done.stderr
    assert not out.exists()
    image = sorted((repo / "data" / "processed" / "images").iterdir())[0]
    done = _predict(repo, artifact, image, image, image, image, image, "--out", out, "--threshold", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = (out / "latency.csv").read_text().splitlines()[1:]
    warm = sorted(float(r.split(",")[1]) for r in rows)[2]
    one = _predict(repo, artifact, image, "--out", tmp_path / "one")
    p50 = float(one.stderr.split("p50 ")[1].split(" ms")[0])
    assert p50 < 2 * warm, (p50, warm, one.stderr)  # a one-image run is timed after warm-up


def test_predict_model_errors_are_one_line(repo, tmp_path):
    image = next((repo / "data" / "processed" / "images").iterdir())
    truncated = tmp_path / "cut.ts"
    truncated.write_bytes((repo / "models" / "export" / "qat.ts").read_bytes()[:5000])
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    name = _metrics(repo, "register")["model_name"]
    cases = [
        ((truncated, image), None, None, "cut.ts: not a loadable qdet artifact"),
        ((repo / "models" / "float.pt", image), None, None, "float.pt: a training checkpoint"),
        (
            (f"models:/{name}@nonexistent", image),
            None,
            None,
            "models:/" + name + "@nonexistent in sqlite:///",
        ),
        ((f"models:/{name}@champion", image), outside, None, "models:/ needs the MLflow store"),
    ]
    for args, cwd, extra, message in cases:
        done = _predict(repo, *args, "--out", tmp_path / "out", cwd=cwd, env_extra=extra)
        assert done.returncode == 1, (args, done.stderr[-2000:])
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # a model that does not load leaves no output folder
    assert not (outside / "mlflow.db").exists()
    champion, store = f"models:/{name}@champion", default_uri(repo)
    done = _predict(repo, champion, image, "--tracking-uri", store, "--out", tmp_path / "out", cwd=outside)
    assert done.returncode == 0 and "1 images" in done.stderr, done.stderr[-2000:]
    assert not (outside / "mlflow.db").exists()  # the registry, too, read the store named
    done = _predict(repo, repo / "models" / "export" / "qat.ts", image, "--threads", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.slow  # three QAT runs (1.1 min)
def test_qat_restarted_over_a_stale_checkpoint_equals_a_fresh_run(repo, tmp_path):
    """A checkpoint left by other params is not resumed, and the restart still calibrates
    the ranges first (it used to skip that whenever any checkpoint file existed)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(merge(params, {"qat": {"lr": params["qat"]["lr"] * 3}})))

    def qat(params_file, name, checkpoint):
        out = tmp_path / name
        return run(
            stage_cmd("qat", "--out", f"{out}.pt")
            + ["--checkpoint", str(checkpoint), "--metrics", f"{out}.json", "--history-csv", f"{out}.csv"]
            + ["--plot", f"{out}.png", "--params", str(params_file)],
            repo,
        )

    qat(repo / "params.yaml", "fresh", tmp_path / "fresh_checkpoint.pt")
    qat(other, "other", tmp_path / "shared_checkpoint.pt")
    done = qat(repo / "params.yaml", "restart", tmp_path / "shared_checkpoint.pt")
    assert "starting over" in done.stderr
    fresh = load_checkpoint(tmp_path / "fresh.pt")["qat"]
    restart = load_checkpoint(tmp_path / "restart.pt")["qat"]
    assert fresh.keys() == restart.keys()
    assert all(torch.equal(fresh[k], restart[k]) for k in fresh)


def test_a_calibration_folder_calibrates_ptq_on_its_images(repo, tmp_path):
    """``calibrate.source: folder``: PTQ observes the folder's images, which need no boxes (the
    first ``calibrate.images`` of them; here all two); a folder without images stops the stage
    in one line naming it."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    folder_params = tmp_path / "params.yaml"
    folder_params.write_text(yaml.safe_dump(merge(params, {"calibrate": {"source": "folder", "images": 3}})))
    frames, empty = tmp_path / "frames", tmp_path / "empty"
    (frames / "night").mkdir(parents=True)
    empty.mkdir()
    images = sorted((repo / "data" / "processed" / "images").iterdir())
    shutil.copy(images[0], frames / "a.ppm")
    shutil.copy(images[1], frames / "night" / "b.ppm")
    (frames / "README.md").write_text("frames from the camera")
    out = tmp_path / "ptq"

    def calibrate(folder):
        outputs = ["--out", f"{out}.pt", "--metrics", f"{out}.json", "--report", f"{out}_modules.json"]
        outputs += ["--sensitivity-csv", f"{out}.csv", "--sensitivity-png", f"{out}.png"]
        extra = [*outputs, "--calibration-folder", str(folder), "--params", str(folder_params)]
        return run(stage_cmd("calibrate", *extra), repo, check=False)

    done = calibrate(frames)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "ptq.json").read_text())["images"] == 2
    assert "calibrated on 2 folder images" in done.stderr
    done = calibrate(empty)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"calibrate.source: folder: {empty} holds no image" in " ".join(done.stderr.split())


@pytest.mark.slow  # reruns qat → register (3 min): keeps the default suite near 15 min
def test_qat_param_reruns_only_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["qat"]["lr"] = 5e-5
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = run(["dvc", "repro"], repo)
    ran = set(stages_run(done.stdout))
    assert ran == {"download", "qat", "control", "convert", "evaluate", "benchmark", "register", "report"}


@pytest.mark.slow  # reruns benchmark → report (2.3 min)
def test_benchmark_param_reruns_only_benchmark_and_register(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["benchmark"]["rounds"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = run(["dvc", "repro"], repo)
    assert stages_run(done.stdout) == ["download", "benchmark", "register", "report"]


def test_register_param_reruns_only_register_and_report(repo):
    """The default suite's check that a param reruns only what depends on it (the cheap end
    of the pipeline; the slow suite changes qat and benchmark params)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["register"]["max_map_drop"] = 0.9
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = run(["dvc", "repro"], repo)
    assert stages_run(done.stdout) == ["download", "register", "report"]
    assert stages_run(run(["dvc", "repro"], repo).stdout) == ["download"]


def test_unknown_param_fails_with_key_and_no_traceback(repo):
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"]["epoks"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = run(stage_cmd("train"), repo, check=False)
    (repo / "params.yaml").write_text(original)
    assert done.returncode == 1
    assert "unknown params key train.epoks" in done.stderr and "Traceback" not in done.stderr


def test_predict_on_a_video(repo, tmp_path):
    import av
    import numpy as np
    from PIL import Image

    frames = sorted((repo / "data" / "processed" / "images").iterdir())[:4]
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as sink:
        stream = sink.add_stream("mpeg4", rate=5)
        stream.width, stream.height = 256, 160
        for p in frames:
            sink.mux(
                stream.encode(
                    av.VideoFrame.from_ndarray(np.asarray(Image.open(p).convert("RGB")), format="rgb24")
                )
            )
        sink.mux(stream.encode(None))
    done = run(
        [
            "qdet-predict",
            str(repo / "models" / "export" / "ptq.ts"),
            str(video),
            "--out",
            str(tmp_path / "out"),
        ],
        repo,
    )
    assert "4 video frames" in done.stderr
    with av.open(str(tmp_path / "out" / "clip.mp4.pred.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 4


def test_dvc_remote_push_pull_gives_identical_files(repo, tmp_path):
    import hashlib
    import shutil

    run(["dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote")], repo)
    run(["dvc", "push"], repo)
    files = [
        repo / "models" / "float.pt",
        repo / "models" / "export" / "qat.ts",
        repo / "data" / "processed" / "train.csv",
    ]
    before = {f: hashlib.md5(f.read_bytes()).hexdigest() for f in files}
    shutil.rmtree(repo / ".dvc" / "cache")
    for folder in ("models", "data/processed", "data/raw"):
        shutil.rmtree(repo / folder)
    run(["dvc", "pull"], repo)
    assert {f: hashlib.md5(f.read_bytes()).hexdigest() for f in files} == before
    assert stages_run(run(["dvc", "repro"], repo).stdout) == ["download"]


def test_a_strict_gate_moves_no_alias_and_says_why(repo, tmp_path):
    before = _metrics(repo, "register")
    client = mlflow.MlflowClient(default_uri(repo))
    held = client.get_model_version_by_alias(before["model_name"], "champion").version
    params = yaml.safe_load((repo / "params.yaml").read_text())
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(merge(params, {"register": {"min_speedup": 1000.0}})))
    out = tmp_path / "register.json"
    done = run(stage_cmd("register", "--params", str(strict), "--out", str(out)), repo)
    assert "champion not moved: no variant passes the gate" in done.stderr
    result = json.loads(out.read_text())
    assert result["champion"] is None and result["alias_reason"] == "no variant passes the gate"
    assert all(why.startswith("fails the gate: speedup vs best float") for why in result["why"].values())
    alias = client.get_model_version_by_alias(before["model_name"], "champion")
    assert alias.version == held  # earlier reruns' versions may not have beaten it: read, not assumed


@pytest.mark.slow
def test_qat_control_adds_float_ft(repo):
    run(["dvc", "exp", "run", "-S", "qat.control=true"], repo)
    ev = _metrics(repo, "eval")
    assert "float_ft" in ev and (repo / "models" / "control" / "float_ft.pt").exists()
    assert ev["qat"]["map50_vs_float_ft"] == pytest.approx(ev["qat"]["map50"] - ev["float_ft"]["map50"])
    lo, hi = ev["qat"]["map50_vs_float_ft_ci95"]  # its resampling is checked in tests/test_metrics.py
    assert lo < hi  # resampled over the images (a constant interval would not be)
    assert _metrics(repo, "control")["epochs"] == 1


@pytest.mark.slow
def test_a_temporary_quantization_experiment_reuses_the_float_model(repo):
    """A --temp (or queued) experiment runs in a copy without checkpoints/: only the stages
    whose inputs changed run, the float model comes from the cache. The run is committed first,
    as a user's is: an experiment leaves untracked files (this repo's dvc.lock) behind."""
    commit(repo, "the run so far")
    done = run(["dvc", "exp", "run", "--temp", "-S", "calibrate.images=3"], repo)
    ran = stages_run(done.stdout)
    assert "calibrate" in ran and "register" in ran, ran
    assert "train" not in ran and "preprocess" not in ran, ran


@pytest.mark.slow  # reruns search → report
def test_a_budget_experiment_reruns_only_the_search_and_what_follows(repo):
    """``dvc exp run -S quant.max_drop=...`` as the README shows it: calibration and the peers
    are reused; the search reruns, and what follows it only where its plan changed. A budget
    every plan fits keeps nothing float: with nothing kept float before, the plan files come
    out byte-equal and only the report (which shows the budget) follows."""
    commit(repo, "the run so far")
    done = run(["dvc", "exp", "run", "--temp", "-S", "quant.max_drop=1.0"], repo)
    if _metrics(repo, "quant_search")["kept_float"]:
        plan_changed = {"qat", "convert", "evaluate", "benchmark", "register"}
    else:
        plan_changed = set()
    assert set(stages_run(done.stdout)) == {"download", "search", "report"} | plan_changed
