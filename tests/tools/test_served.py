"""qdet-served: every served block is set against the artifact timed beside it, not another run's."""

import pytest
from typer.testing import CliRunner

from qdet.tools.served import ServeFailed, alternate, app, artifact_of, lines


def test_each_served_block_runs_next_to_the_artifact_figure_of_its_kind():
    calls = []
    slowdown = iter([1.0, 1.0, 2.0, 2.0, 1.0, 1.0])  # per served block: round 2 runs at half speed
    machine = {"slow": 1.0}

    def serve(clients):
        machine["slow"] = next(slowdown)
        calls.append(f"serve {clients}")
        return [0.012 * machine["slow"]] * 5, 5 / 40.0 * machine["slow"], 0  # 12 ms, 40 req/s

    def own_latency():
        calls.append("own latency")
        return [0.010 * machine["slow"]] * 4  # 10 ms

    def own_rate():
        calls.append("own rate")
        return 50.0 / machine["slow"]  # 50 img/s

    runs = alternate(serve, own_latency, own_rate, [1, 4], 3)

    assert calls == ["serve 1", "own latency", "serve 4", "own rate"] * 3
    one, four = runs
    # the slow round slows both sides alike: every round's ratio is the same
    assert one["x_artifact_p50_per_round"] == pytest.approx([1.2, 1.2, 1.2])
    assert four["of_artifact_throughput_per_round"] == pytest.approx([0.8, 0.8, 0.8])
    assert one["requests"] == 15 and four["failed"] == 0
    assert one["p50_ms"] == pytest.approx(12.0)
    assert one["x_artifact_p50"] == pytest.approx(1.2)  # pooled: 12 ms against 10 ms
    assert four["req_per_s"] == pytest.approx((40 + 20 + 40) / 3)  # the mean of the blocks' rates
    assert "x1.20 the artifact's p50 (10.0 ms; rounds x1.20, x1.20, x1.20)" in lines(runs)[0]
    assert "80% of the artifact's throughput" in lines(runs)[1]


def test_the_artifact_is_found_inside_a_model_folder_or_refused_in_one_line(tmp_path):
    (tmp_path / "artifacts" / "qat").mkdir(parents=True)
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      detector:\n        path: artifacts/qat\n"
    )
    assert artifact_of(str(tmp_path)) == tmp_path / "artifacts" / "qat"
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    with pytest.raises(ServeFailed, match="not a qdet model"):
        artifact_of(str(tmp_path))


def test_an_unknown_variant_is_refused_in_one_line_before_any_server_starts(tmp_path):
    done = CliRunner().invoke(app, [str(tmp_path), "x.ppm", "--variant", "nope"])
    assert done.exit_code == 1
    assert "--variant: unknown variant 'nope'; known:" in done.output and "Traceback" not in done.output
