"""What the registry shows beside the models: each logged model's figures (the experiment's
Models view compares them as rows), reference models for the rows never registered, the
pipeline run's description and ``champion`` tag, and the one-line summary for DVC."""

from __future__ import annotations

import mlflow

from qdet.tracking import numeric_metrics, shown
from qdet.variants.table import RECOMMENDED, REFERENCE

MODEL_METRICS = (  # what each logged model carries: the experiment's Models view compares them as rows
    "map50",
    "map50_ci95",
    "map",
    "map50_drop",
    "map50_drop_ci95",
    "latency_ms_p50",
    "latency_ms_p50_ci95",
    "speedup_vs_float_eager",
    "speedup_vs_float_eager_ci95",
    "speedup_vs_best_float",
    "speedup_vs_best_float_ci95",
    "speedup_vs_best_int8_peer",
    "speedup_vs_best_int8_peer_ci95",
    "x_floor",
    "size_mb",
)


def variant_metrics(row: str, maps: dict, bench: dict) -> dict[str, object]:
    """One eval/benchmark row's figures under the names the runs and registry tags use too
    (``-1``, COCO's "no such objects", is left out)."""
    merged = {**bench["variants"].get(row, {}), **maps.get(row, {})}
    return {k: merged[k] for k in MODEL_METRICS if k in merged and merged[k] != -1}


def log_model_metrics(model_id: str, metrics: dict[str, object], step: int, run) -> None:
    """``metrics`` on the logged model (and, as MLflow links them, on the register run at
    ``step``: one step per model, so its charts do not stack the variants)."""
    run.call(mlflow.log_metrics, numeric_metrics(metrics), step=step, model_id=model_id)


def log_reference(variant: str, label: str, metrics: dict[str, object], step: int, run) -> None:
    """A variant that is compared but never registered (float compiled, the ONNX Runtime and
    OpenVINO peers) as a logged model without files: a row of the experiment's Models view."""
    model = run.call(
        mlflow.initialize_logged_model,
        name=f"ref_{variant}",
        source_run_id=run.run_id,
        tags={"qdet.variant": variant, "qdet.label": label, "qdet.registered": "no (a reference)"},
        model_type="reference",
    )
    if model is None:
        return
    run.call(mlflow.finalize_logged_model, model.model_id, "READY")
    log_model_metrics(model.model_id, metrics, step, run)


def summary(champion: str | None, rows: dict[str, dict[str, object]], registered: dict[str, str]) -> dict:
    """The run's deciding figures, small enough for one terminal line in ``dvc metrics show``:
    the champion (else QAT, so experiments stay comparable) against the float it came from and
    the fastest rivals."""
    row = rows[registered[champion or RECOMMENDED]]
    figures = {
        "float_map50": rows.get(REFERENCE, {}).get("map50"),
        **{k: row.get(k) for k in ("map50", "map50_drop", "latency_ms_p50")},
        **{k: row.get(k) for k in ("speedup_vs_best_float", "speedup_vs_best_int8_peer", "x_floor")},
    }
    return {"champion": champion or "none"} | {k: shown(v) for k, v in figures.items() if v is not None}


def describe_parent(champion: str | None, rows: dict[str, dict[str, object]], best: dict, run) -> None:
    """The pipeline run's description (the UI's Description box) and its ``champion`` tag: which
    variant won and a plain table of every row, so nobody has to pick among 200 metric names."""

    def cell(row: dict, key: str, fmt: str) -> str:
        return format(row[key], fmt) if isinstance(row.get(key), int | float) else "-"

    lines = [
        f"**champion: {champion or 'none (no variant passed the gate)'}**; best float: "
        f"{best.get('best_float')}, best int8 peer: {best.get('best_int8_peer')}",
        "",
        "| variant | mAP@.5 | drop | p50 ms | x float eager | x best float | x best int8 peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {cell(row, 'map50', '.3f')} | {cell(row, 'map50_drop', '+.3f')} | "
            f"{cell(row, 'latency_ms_p50', '.1f')} | {cell(row, 'speedup_vs_float_eager', '.2f')} | "
            f"{cell(row, 'speedup_vs_best_float', '.2f')} | {cell(row, 'speedup_vs_best_int8_peer', '.2f')} |"
        )
    if run.parent_id:
        client = mlflow.MlflowClient()
        run.call(client.set_tag, run.parent_id, "mlflow.note.content", "\n".join(lines))
        run.call(client.set_tag, run.parent_id, "champion", champion or "none")
