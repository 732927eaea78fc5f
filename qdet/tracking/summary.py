"""Which figures go where: the few per variant that decide (on the pipeline's run) apart from
the detail (on the stage's run), at the precision a benchmark carries."""

from __future__ import annotations

SUMMARY = (  # per variant, on the pipeline's run; intervals and the rest stay on the stage's run
    "map50",  # and every registered variant's logged model carries these with their intervals
    "map50_drop",
    "latency_ms_p50",
    "speedup_vs_best_float",
    "speedup_vs_best_int8_peer",
)


def split_summary(rows: dict[str, dict[str, object]]) -> tuple[dict[str, object], dict[str, object]]:
    """``(summary, detail)`` of per-variant rows, as ``<variant>_<key>`` metrics: the summary
    (:data:`SUMMARY`) for the parent run, the detail for the stage's run. ``-1`` (COCO's "no such
    objects", not a score) is left out of both."""
    summary: dict[str, object] = {}
    detail: dict[str, object] = {}
    for variant, row in rows.items():
        for key, value in row.items():
            if value != -1.0:
                (summary if key in SUMMARY else detail)[f"{variant}_{key}"] = value
    return summary, detail


def numeric_metrics(metrics: dict[str, object]) -> dict[str, float]:
    """What MLflow can plot: numbers (at :func:`shown` precision), a ``[lo, hi]`` interval as
    ``<key>_lo`` and ``<key>_hi``; anything else (text, nested rows) is not a metric."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = shown(value)
        elif key.endswith("_ci95") and isinstance(value, list) and len(value) == 2:
            out[f"{key}_lo"], out[f"{key}_hi"] = shown(value[0]), shown(value[1])
    return out


def shown(value: float) -> float:
    """A figure at the precision it carries (4 significant digits: 0.8186, 3.107, 89.04): the
    UI prints every digit it is given, and the noise of a benchmark is in the second one."""
    return float(f"{float(value):.4g}")
