"""The seed table's bookkeeping: each seed's params, and the targets' verdicts."""

from qdet.tools.seeds import _seed_params, summarize

PARAMS = {
    "dataset": "gtsdb",
    "backbone": "resnet18",
    "seed": 0,
    "data": {"source": "synthetic"},
    "model": {"fpn": True},
    "train": {"epochs": 3, "lr": 0.001, "threads": 2, "workers": 0},
    "quant": {"engine": "pt2e"},
}


def _with(section: str, key: str, value) -> dict:
    return {**PARAMS, section: {**PARAMS[section], key: value}}


def test_seed_params_change_the_seed_untrack_the_run_and_anchor_a_local_source(tmp_path):
    seeded = _seed_params(_with("data", "source", "archives/gtsdb.zip"), 2, tmp_path)
    assert seeded["seed"] == 2 and seeded["tracking"]["enabled"] is False
    assert seeded["data"]["source"] == str(tmp_path / "archives/gtsdb.zip")
    assert PARAMS["seed"] == 0  # the caller's params are left alone
    assert _seed_params(PARAMS, 1, tmp_path)["data"]["source"] == "synthetic"


def test_summary_takes_the_spread_of_test_scores_and_the_worst_last_epoch_on_valid():
    rows = [
        {"val_map50": 0.84, "val_map50_last_epoch_gain": 0.004, "test_map50": 0.80},
        {"val_map50": 0.86, "val_map50_last_epoch_gain": 0.009, "test_map50": 0.82},
        {"val_map50": 0.815, "val_map50_last_epoch_gain": -0.002, "test_map50": 0.845},
    ]
    out = summarize(rows)
    assert abs(out["spread"] - 0.045) < 1e-9 and not out["spread_within_limit"]
    assert abs(out["valid_spread"] - 0.045) < 1e-9
    assert out["worst_last_epoch_gain"] == 0.009 and out["on_plateau"]
    assert summarize(rows[:2])["spread_within_limit"]
    assert abs(summarize(rows[1:])["valid_spread"] - 0.045) < 1e-9  # valid apart from test
    assert abs(summarize(rows[1:])["spread"] - 0.025) < 1e-9


def test_precisions_are_summarised_apart_and_their_gap_is_checked():
    """fp32 and bf16 rows: each precision's own spread, the gap between their mean test scores
    (mAP@.5 and mAP@.5:.95), and the plateau read on both valid curves."""

    def row(precision, test_map50, test_map, gain50=0.001, gain=0.002):
        return {
            "precision": precision,
            "val_map50": 0.9,
            "val_map50_last_epoch_gain": gain50,
            "val_map_last_epoch_gain": gain,
            "test_map50": test_map50,
            "test_map": test_map,
        }

    rows = [
        row("bf16", 0.97, 0.74),
        row("bf16", 0.96, 0.73),
        row("fp32", 0.95, 0.70),
        row("fp32", 0.94, 0.71),
    ]
    out = summarize(rows)
    assert abs(out["precision_gap_test_map50"] - 0.02) < 1e-9
    assert abs(out["precision_gap_test_map"] - 0.03) < 1e-9 and not out["precision_gap_within_limit"]
    assert abs(out["per_precision"]["fp32"]["spread"] - 0.01) < 1e-9 and out["spread_within_limit"]
    rows[2:] = [row("fp32", 0.95, 0.72), row("fp32", 0.95, 0.72)]  # gaps 0.015 and 0.015
    assert summarize(rows)["precision_gap_within_limit"]
    rows[2] = row("fp32", 0.95, 0.72, gain=0.039)  # flat on mAP@.5, still rising on mAP@.5:.95
    assert summarize(rows)["worst_last_epoch_gain"] == 0.039 and not summarize(rows)["on_plateau"]
    rows[0] = row("bf16", 0.99, 0.74)  # bf16's own seeds 3 points apart: the table's verdict is missed
    assert not summarize(rows)["spread_within_limit"]


def _seed_file(path, recipe, seeds, cpu=None, **top):
    """A seeds file as qdet-seeds writes it (this machine's CPU unless ``cpu`` says otherwise)."""
    from qdet.core.files import write_json
    from qdet.measure.speed import environment

    machine = environment(2)
    write_json({"recipe": recipe, "environment": {**machine, **(cpu or {})}, "seeds": seeds, **top}, path)
    return path


def _row(seed, precision, test_map50, **extra):
    return {
        "seed": seed,
        "precision": precision,
        "val_map50": 0.99,
        "val_map50_per_epoch": [0.9, 0.99],
        "val_map50_last_epoch_gain": 0.001,
        "val_map_last_epoch_gain": 0.002,
        "test_map50": test_map50,
        "test_map": 0.8,
        **extra,
    }


def test_merge_joins_earlier_files_of_the_recipe_each_row_keeping_how_it_trained(tmp_path):
    """Seed rows trained in two sessions become one table: the union, each row with its own
    threads and commit, summarised again; the first file wins a (seed, precision) named twice."""
    import yaml
    from typer.testing import CliRunner

    from qdet.core.checkpoint import recipe_digest
    from qdet.core.files import read_json
    from qdet.tools.seeds import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    recipe = recipe_digest(PARAMS)
    first = _seed_file(tmp_path / "a.json", recipe, [_row(0, "bf16", 0.98)], threads=2, jobs=1, commit="c1")
    later = [_row(1, "bf16", 0.96, threads=1, jobs=2, commit="c2"), _row(0, "bf16", 0.50)]
    second = _seed_file(tmp_path / "b.json", recipe, later + [_row(1, "fp32", 0.97)])
    out = tmp_path / "seeds.json"
    args = ["--params", str(params), "--merge", str(first), "--merge", str(second), "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    table = read_json(out)
    rows = {(r["seed"], r["precision"]): r for r in table["seeds"]}
    assert sorted(rows) == [(0, "bf16"), (1, "bf16"), (1, "fp32")]
    assert rows[0, "bf16"]["test_map50"] == 0.98 and rows[0, "bf16"]["threads"] == 2
    assert rows[1, "bf16"]["threads"] == 1 and rows[1, "bf16"]["commit"] == "c2"
    assert abs(table["spread"] - 0.02) < 1e-9 and "precision_gap_test_map50" in table


def test_merge_refuses_another_recipe_another_cpu_and_nothing_to_do(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from qdet.core.checkpoint import recipe_digest
    from qdet.tools.seeds import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    recipe = recipe_digest(PARAMS)
    other = _seed_file(tmp_path / "other.json", "0123456789ab", [_row(0, "bf16", 0.98)])
    zen3 = _seed_file(tmp_path / "zen3.json", recipe, [_row(0, "fp32", 0.98)], cpu={"cpu_flags": "avx2"})

    def run(*args):
        return CliRunner().invoke(app, ["--params", str(params), "--out", str(tmp_path / "s.json"), *args])

    done = run("--merge", str(other))
    assert done.exit_code == 2 and f"recipe 0123456789ab, not this one ({recipe})" in done.output
    done = run("--merge", str(zen3))
    assert done.exit_code == 2 and "another CPU" in done.output
    done = run()
    assert done.exit_code == 2 and "name seeds to train, or --merge" in done.output
    assert not (tmp_path / "s.json").exists()
