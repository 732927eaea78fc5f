"""The results page renders every row the run measured, with its intervals, from the metric files."""

from qdet.report.page import render, search_table

ROW = {
    "map50": 0.8046,
    "map50_ci95": [0.759, 0.853],
    "map": 0.512,
    "map50_drop": -0.0396,
    "map50_drop_ci95": [-0.089, 0.010],
}
BENCH = {
    "latency_ms_p50": 89.04,
    "latency_ms_p50_ci95": [86.2, 92.6],
    "latency_ms_p90": 110.2,
    "size_mb": 13.9,
    "speedup_vs_float_eager": 2.61,
    "speedup_vs_float_eager_ci95": [2.49, 2.80],
    "speedup_vs_best_float": 1.61,
    "speedup_vs_best_float_ci95": [1.56, 1.72],
    "speedup_vs_best_int8_peer": 0.97,
    "speedup_vs_best_int8_peer_ci95": [0.93, 1.02],
}


def _page(**changes) -> str:
    args = dict(
        commit="abc123",
        breakdown={
            "environment": {"cpu": "AMD EPYC", "cpu_family": "25", "cpu_flags": "avx2", "threads": 2,
                            "torch": "2.14.1"},
            "breakdown_ms": {"float_eager": {"backbone": 120.25, "total": 230.0},
                             "int8": {"backbone": 40.5, "total": 89.0}},
            "int8_backbone": {"scope": "backbone + FPN", "backbone_gmacs": 2.5, "backbone_ms": 40.5,
                              "backbone_gmac_per_s": 61.7, "measured_fp32_conv_gmac_per_s": 94.6,
                              "measured_int8_conv_gmac_per_s": 190.4, "measured_int8_over_fp32_conv": 2.013,
                              "share_of_measured_int8_conv": 0.324, "best_case_conv": "3x3, 256 -> 256",
                              "nominal_int8_peak_gmac_per_s": 313.0, "share_of_nominal_peak": 0.197,
                              "nominal_peak_rule": "avx2: 32 int8 MACs per instruction x 2 units"},
        },
        preprocess={"dataset": "gtsdb", "train": {"images": 325}, "valid": {"images": 75},
                    "test": {"images": 100}, "test_split": "by fraction",
                    "test_split_why": "none of the 500 usable images is one of gtsdb's official test images"},
        train={
            "epochs": 3,
            "val_map50": 0.7651,
            "val_map50_last_epoch_gain": 0.146,
            "precision": "bf16",
            "precision_why": "auto: this CPU computes bf16 natively",
            "train_seconds_this_run": 253.4,
        },
        convert={"engine": "pt2e", "float_dtype": "fp32", "float_dtype_why": "auto: no bf16 here"},
        evaluation={"float_eager": {"map50": 0.765, "map50_ci95": [0.716, 0.825], "map": 0.45}, "qat": ROW},
        benchmark={
            "best_float": "ov_fp32",
            "best_int8_peer": "ov_int8",
            "variants": {"qat": BENCH, "ov_fp32": {**BENCH, "latency_ms_p50": 143.2}},
        },
        register={"model_name": "qdet-gtsdb-resnet18", "champion": "qat", "alias": "champion",
                  "alias_moved": True, "alias_reason": "no version holds the alias yet",
                  "why": {"qat": "champion: passes the gate"}},
        plots=["map_vs_latency.png"],
    )  # fmt: skip
    return render(**(args | changes))


def test_page_carries_machine_accuracy_speed_and_champion_with_intervals():
    page = _page()
    assert "AMD EPYC (family 25)" in page and "avx2" in page and "torch 2.14.1" in page
    assert "commit `abc123`" in page
    assert "| QAT int8 | 0.805 [0.759, 0.853] | 0.512 | -0.040 [-0.089, +0.010] |" in page
    assert "| float eager | 0.765 [0.716, 0.825] | 0.450 | reference |" in page
    speed = "89.0 [86.2, 92.6] | 110.2 | 13.9 | 2.61 [2.49, 2.80] | 1.61 [1.56, 1.72] | 0.97 [0.93, 1.02] |"
    assert f"| QAT int8 | {speed}" in page
    assert page.index("| QAT int8 | 89.0") < page.index("| OpenVINO fp32 | 143.2")  # fastest first
    assert "Best float (the fastest row that is not int8): **OpenVINO fp32**" in page
    assert "alias `champion` moved: no version holds the alias yet" in page
    assert "[accuracy against latency, every row](../plots/map_vs_latency.png)" in page
    assert "qat_curves.png" not in page  # only plots the run wrote
    assert "test 100 (by fraction; every accuracy below is on test" in page
    assert "- test split rule: none of the 500 usable images is one of gtsdb's" in page
    assert (
        "3 epochs in bf16 (auto: this CPU computes bf16 natively), 253 s; valid mAP@.5 0.765 at the end"
        in page
    )
    assert "valid mAP@.5 0.765 at the end, +0.146 from the last epoch" in page


def test_page_shows_time_per_part_and_the_backbone_against_the_measured_and_nominal_peaks():
    page = _page()
    assert "| detector | backbone | total |" in page
    assert "| float eager | 120.2 | 230.0 |" in page and "| int8 | 40.5 | 89.0 |" in page
    assert "int8 backbone + FPN: 2.50 GMAC per image in 40.5 ms = 62 GMAC/s, 32% of the best-case" in page
    assert "(190 GMAC/s; fp32 95: int8 convolutions are at most x2.01 faster than fp32 ones here" in page
    assert "20% of the nominal int8 peak (313 GMAC/s: avx2: 32 int8 MACs" in page


def test_a_missing_figure_is_a_dash_not_a_made_up_number():
    page = _page(train={"epochs": 3})
    assert "valid mAP@.5 - at the end" in page
    assert "3 epochs in fp32 (before train.precision), - s;" in page  # a run from before the key


def test_page_says_what_the_float_ops_compute_in_and_what_bf16_costs():
    page = _page()
    assert "engine: pt2e; float ops between the int8 kernels in **fp32** (auto: no bf16 here)" in page
    assert "what bf16 costs" not in page  # no fp32 twin: nothing to compare
    twin = {**ROW, "map50": 0.8101}
    page = _page(
        convert={"engine": "pt2e", "float_dtype": "bf16", "float_dtype_why": "auto: native bf16"},
        evaluation={"qat": ROW, "qat_fp32": twin},
        benchmark={"variants": {"qat": BENCH, "qat_fp32": {**BENCH, "latency_ms_p50": 47.25}}},
    )
    assert "QAT int8 mAP@.5 0.805 against 0.810 with fp32 float ops; p50 89.0 ms against 47.2 ms" in page


SEEDS = {
    "recipe": "r1",
    "commit": "c1",
    "threads": 2,
    "environment": {"cpu": "AMD EPYC"},
    "seeds": [
        {
            "seed": 0,
            "val_map50_per_epoch": [0.5, 0.84, 0.846],
            "val_map50_last_epoch_gain": 0.006,
            "test_map50": 0.851,
            "seconds": 500,
        },
        {
            "seed": 1,
            "val_map50_per_epoch": [0.4, 0.8, 0.861],
            "val_map50_last_epoch_gain": 0.061,
            "test_map50": 0.836,
            "seconds": 510,
            "threads": 1,
            "jobs": 2,
            "commit": "c2",
            "precision": "fp32",
            "val_map_last_epoch_gain": 0.012,
            "test_map": 0.612,
        },
    ],
    "spread": 0.015,
    "valid_spread": 0.015,
    "spread_within_limit": True,
    "worst_last_epoch_gain": 0.061,
    "on_plateau": False,
    "limits": {"spread": 0.03, "last_epoch_gain": 0.01},
}


def test_seed_table_shows_each_seed_and_the_targets_met_or_missed():
    page = _page(seeds=SEEDS, recipe="r1")
    # a row keeps how it trained; an older table's rows take the file's threads and commit
    assert (
        "| fp32 | 1 | 0.400 / 0.800 / 0.861 | +0.061 / +0.012 | 0.836 | 0.612 | 510 (1 thread, 2 at a time) |"
        in page
    )
    assert "| ? | 0 | 0.500 / 0.840 / 0.846 | +0.006 / - | 0.851 | - | 500 (2 threads) |" in page
    assert "Commit `c1`, `c2` on AMD EPYC;" in page
    assert "![valid mAP per epoch, each seed and precision](seeds.png)" in page
    assert "Precisions apart" not in page
    gap = {
        "precision_gap_test_map50": 0.031,
        "precision_gap_test_map": 0.012,
        "precision_gap_within_limit": False,
    }
    apart = {"per_precision": {"bf16": {"spread": 0.005}, "fp32": {"spread": 0.011}}}
    page_apart = _page(
        seeds={**SEEDS, **gap, **apart, "limits": {**SEEDS["limits"], "precision_gap": 0.02}}, recipe="r1"
    )
    assert "mAP@.5 differ by 0.0310 and mAP@.5:.95 by 0.0120 (target ≤ 0.02: missed)" in page_apart
    assert (
        "Spread of test mAP@.5: bf16 0.0050, fp32 0.0110 (all rows 0.0150) (target ≤ 0.03: met" in page_apart
    )
    assert "Spread of test mAP@.5: 0.0150 (target ≤ 0.03: met; valid: 0.0150)" in page
    assert "largest last-epoch gain +0.0610 (target ≤ 0.01: missed)" in page
    assert "Stale" not in page


def test_seed_table_of_another_recipe_is_marked_stale_and_a_missing_one_says_what_to_run():
    assert "**Stale**: measured on another float recipe (r1, this run's is r2)" in _page(
        seeds=SEEDS, recipe="r2"
    )
    assert "Not measured for this recipe: `qdet-seeds 0 1 2 --precision fp32 --precision bf16`" in _page(
        seeds=None, recipe="r2"
    )


def test_deploy_rows_are_set_against_their_torch_artifact_and_the_same_runtime():
    from qdet.report.speed_lines import deploy_lines

    evaluation = {"qat": {"map50": 0.960}, "qat_openvino": {"map50": 0.955}, "ov_int8": {"map50": 0.950}}
    speed = {
        "qat": {"latency_ms_p50": 30.0},
        "qat_openvino": {"latency_ms_p50": 33.0, "size_mb": 14.4},
        "ov_int8": {"latency_ms_p50": 31.4},
    }
    lines = deploy_lines(evaluation, {"variants": speed, "throughput": {"qat_openvino": {"img_per_s": 36.0}}})
    row = next(line for line in lines if line.startswith("| QAT int8 as OpenVINO IR"))
    assert "| 0.955 | -0.50 pt | 33.0 | 1.05 (OpenVINO int8) | 36.0 | 14.4 |" in row
    assert lines[-1] == (
        "Model or runtime? QAT int8 on qdet's runtime 30.0 ms; the same model on OpenVINO 33.0 ms "
        "(the runtime: x1.10); OpenVINO int8 31.4 ms (the model, same runtime: x0.95)."
    )
    assert deploy_lines({"qat": {"map50": 0.9}}, {"variants": {}}) == [
        "Not written by this run (the fx engine has no ONNX export)."
    ]


def test_search_steps_are_a_table_with_the_chosen_plan_and_the_budget_verdict():

    step = {
        "kept_float": [],
        "map50": 0.85,
        "map50_ci95": [0.8, 0.9],
        "latency_ms": 10.0,
        "why": "PTQ as planned",
    }
    kept = {**step, "kept_float": ["backbone.body.0"], "map50": 0.895, "latency_ms": 12.5, "why": "probe"}
    record = {"search": "auto", "max_drop": 0.01, "reference_map50": 0.9, "evaluations": 2, "met": True}
    lines = search_table({**record, "steps": [step, kept], "chosen": 1})
    rows = [line for line in lines if line.startswith("| 0") or line.startswith("| 1")]
    assert rows[0].startswith("| 0 | - | 0.850 [0.800, 0.900] | +0.050 | 10.00 |")
    assert rows[1].startswith("| 1 **(chosen)** | backbone.body.0 | 0.895") and "+0.005" in rows[1]
    assert "**met**" in lines[0]
    missed = search_table({**record, "met": False, "steps": [step], "chosen": 0})
    assert "**missed**" in missed[0] and "QAT" in missed[0]
    assert "off" in search_table({"search": "off"})[0]
    page = _page(search={**record, "steps": [step], "chosen": 0})
    assert "Accuracy to a budget" in page and "| 0 **(chosen)** | - |" in page
