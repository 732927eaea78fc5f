"""The registry page's text: what a model is, how to load it, the figures that decided it."""

from pathlib import Path

from qdet.registry.champion import Candidate
from qdet.registry.describe import model_description, version_description

QAT = Candidate("qat", Path("models/export/qat"), 0.973, -0.001, 1.59, [1.51, 1.65], 21.7, "g", [0.95, 0.99])
ROW = {"speedup_vs_best_int8_peer": 1.25, "size_mb": 14.2}


def test_a_version_says_what_it_is_its_figures_and_how_to_load_its_folder():
    text = version_description(
        "qdet-gtsdb-resnet18", "7", QAT, ROW, {"backbone": "resnet18", "dataset": "gtsdb"}
    )
    assert text.startswith("**qat**: QAT int8 (qdet); Faster R-CNN, backbone resnet18")
    assert "test mAP@.5 0.973 [0.950, 0.990], -0.001 vs float eager, p50 21.7 ms" in text
    assert "x1.59 [1.51, 1.65] the best non-int8 row, x1.25 the best int8 peer, 14.2 MB" in text
    assert "`artifacts/qat/aot_detector.py`" in text and "load('artifacts/qat')" in text
    assert "qdet-predict models:/qdet-gtsdb-resnet18/7 my_images/" in text


def test_the_model_page_names_the_alias_holder_or_why_it_did_not_move():
    moved = model_description("m", "champion", QAT, "3", ROW, "no version holds the alias yet")
    assert "**@champion: version 3 (qat)**: test mAP@.5 0.973" in moved
    assert "Why it holds the alias: no version holds the alias yet." in moved
    assert "mlflow.pyfunc.load_model('models:/m@champion')" in moved
    kept = model_description("m", "champion", None, None, {}, "no variant passes the gate")
    assert "@champion did not move in the last run: no variant passes the gate." in kept
    assert "version" not in kept.split("Load it:")[0].split("gate.")[-1]
