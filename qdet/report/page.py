"""``reports/results.md``: the run's results as a page, written from its metric files only, so
nothing in it is copied by hand and every figure is this run's."""

from __future__ import annotations

from qdet.measure.limits import limit_line
from qdet.report.speed_lines import deploy_lines, floor_lines, num, regime_lines, throughput_lines
from qdet.variants.table import FP32_TWIN, RECOMMENDED, REFERENCE, label

PLOTS = (  # (file below plots/, what it shows)
    ("map_vs_latency.png", "accuracy against latency, every row"),
    ("train_curves.png", "float training: losses and valid mAP per epoch"),
    ("qat_curves.png", "quantization-aware training"),
    ("sensitivity.png", "per-module int8 sensitivity (SQNR)"),
    ("quant_search.png", "the accuracy-budget search: valid mAP@.5 against kernel time, step by step"),
    ("eval/pr_curves.png", "precision-recall at IoU 0.5"),
)


def _ci(row: dict, key: str, fmt: str) -> str:
    """``0.805 [0.77, 0.84]``: a figure with its 95% interval, or ``-``."""
    point, band = row.get(key), row.get(f"{key}_ci95")
    if not isinstance(point, int | float):
        return "-"
    if isinstance(band, list) and len(band) == 2:
        return f"{point:{fmt}} [{band[0]:{fmt}}, {band[1]:{fmt}}]"
    return f"{point:{fmt}}"


def machine(environment: dict) -> list[str]:
    versions = ", ".join(
        f"{k} {environment[k]}" for k in ("torch", "torchao", "onnxruntime", "openvino", "nncf", "python")
        if k in environment
    )  # fmt: skip
    return [
        f"- CPU: {environment.get('cpu', '?')} (family {environment.get('cpu_family', '?')}), "
        f"instruction sets that matter here: {environment.get('cpu_flags') or 'none beyond AVX'}",
        f"- threads: {environment.get('threads', '?')}; "
        f"quantized engine: {environment.get('quantized_engine', '?')}",
        f"- {versions}",
    ]


def accuracy_table(evaluation: dict) -> list[str]:
    lines = [
        "| variant | mAP@.5 [95% CI] | mAP [95% CI] | mAP@.5 drop vs float eager [95% CI] |",
        "|---|---|---|---|",
    ]
    for name, row in evaluation.items():
        drop = _ci(row, "map50_drop", "+.3f") if name != REFERENCE else "reference"
        lines.append(f"| {label(name)} | {_ci(row, 'map50', '.3f')} | {_ci(row, 'map', '.3f')} | {drop} |")
    return lines


def speed_table(variants: dict) -> list[str]:
    lines = [
        "| variant | p50 ms [95% CI] | p90 ms | size MB | x float eager | x best float | x best int8 peer |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = sorted(variants.items(), key=lambda item: item[1]["latency_ms_p50"])
    for name, row in rows:
        lines.append(
            f"| {label(name)} | {_ci(row, 'latency_ms_p50', '.1f')} | "
            f"{num(row.get('latency_ms_p90'), '.1f')} | "
            f"{num(row.get('size_mb'), '.1f')} | {_ci(row, 'speedup_vs_float_eager', '.2f')} | "
            f"{_ci(row, 'speedup_vs_best_float', '.2f')} | {_ci(row, 'speedup_vs_best_int8_peer', '.2f')} |"
        )
    return lines


def time_per_part(breakdown: dict) -> list[str]:
    """Milliseconds per part of the float and int8 detectors, and how far the int8 backbone runs
    from the CPU's nominal int8 peak."""
    rows = breakdown.get("breakdown_ms", {})
    if not rows:
        return ["-"]
    parts = list(dict.fromkeys(p for r in rows.values() for p in r if p != "total")) + ["total"]
    lines = ["| detector | " + " | ".join(parts) + " |", "|---" * (len(parts) + 1) + "|"]
    lines += [
        f"| {label(n)} | " + " | ".join(num(r.get(p), ".1f") for p in parts) + " |" for n, r in rows.items()
    ]
    limit = breakdown.get("int8_backbone", {})
    if limit:
        lines += ["", limit_line(limit) + " (qdet/measure/limits.py)"]
    return lines


def int8_artifacts(convert: dict, evaluation: dict, benchmark: dict) -> list[str]:
    """Which engine wrote the int8 artifacts, what their float ops compute in and why, and, when
    that is bf16, what it costs: the recommended model with fp32 float ops beside it."""
    lines = [
        f"- engine: {convert.get('engine', '?')}; float ops between the int8 kernels in "
        f"**{convert.get('float_dtype', '?')}** ({convert.get('float_dtype_why') or '-'})",
    ]
    if FP32_TWIN in evaluation and RECOMMENDED in evaluation:
        bf16, fp32 = evaluation[RECOMMENDED], evaluation[FP32_TWIN]
        speed = benchmark.get("variants", {})
        ms = {n: speed.get(n, {}).get("latency_ms_p50") for n in (RECOMMENDED, FP32_TWIN)}
        lines.append(
            f"- what bf16 costs and gains: {label(RECOMMENDED)} mAP@.5 {num(bf16.get('map50'), '.3f')} "
            f"against {num(fp32.get('map50'), '.3f')} with fp32 float ops; p50 "
            f"{num(ms[RECOMMENDED], '.1f')} ms against {num(ms[FP32_TWIN], '.1f')} ms"
        )
    return lines


SEEDS_COMMAND = "qdet-seeds 0 1 2 --precision fp32 --precision bf16"


def seed_table(seeds: dict | None, recipe: str) -> list[str]:
    """The float recipe at several seeds (``reports/seeds.json``), or what to run for it; a
    table measured on another recipe is shown as such, never as this run's."""
    if not seeds:
        return [f"Not measured for this recipe: `{SEEDS_COMMAND}` writes `reports/seeds.json`."]
    lines = []
    if seeds.get("recipe") != recipe:
        lines += [
            f"**Stale**: measured on another float recipe ({seeds.get('recipe')}, this run's is "
            f"{recipe}); rerun `{SEEDS_COMMAND}`.",
            "",
        ]
    rows = seeds.get("seeds", [])
    commits = sorted({str(row.get("commit", seeds.get("commit", "?"))) for row in rows})
    lines += [
        f"Commit {', '.join(f'`{c}`' for c in commits)} on {seeds.get('environment', {}).get('cpu', '?')}; "
        "each row's seconds say the threads it trained with and how many trained at once. The seed "
        "sets the initial weights, batch order and augmentation; the data and its splits are the "
        "same for every seed (`data.seed`), so each model is scored on the same test images.",
        "",
        "| precision | seed | valid mAP@.5 per epoch | last epoch adds (mAP@.5 / mAP@.5:.95) "
        "| test mAP@.5 | test mAP@.5:.95 | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        curve = " / ".join(f"{v:.3f}" for v in row.get("val_map50_per_epoch", []))
        gains = " / ".join(
            num(row.get(k), "+.3f") for k in ("val_map50_last_epoch_gain", "val_map_last_epoch_gain")
        )
        lines.append(
            f"| {row.get('precision', '?')} | {row.get('seed')} | {curve} | {gains} "
            f"| {num(row.get('test_map50'), '.3f')} | {num(row.get('test_map'), '.3f')} "
            f"| {num(row.get('seconds'), '.0f')} ({_threads(row, seeds)}) |"
        )
    limits = seeds.get("limits", {})
    apart = seeds.get("per_precision", {})  # with several precisions the target holds within each
    spread = num(seeds.get("spread"), ".4f")
    if apart:
        spread = (
            ", ".join(f"{p} {num(s.get('spread'), '.4f')}" for p, s in apart.items())
            + f" (all rows {spread})"
        )
    lines += [
        "",
        f"Spread of test mAP@.5: {spread} (target ≤ "
        f"{limits.get('spread', '?')}: {'met' if seeds.get('spread_within_limit') else 'missed'}; valid: "
        f"{num(seeds.get('valid_spread'), '.4f')}); largest last-epoch gain "
        f"{num(seeds.get('worst_last_epoch_gain'), '+.4f')} (target ≤ "
        f"{limits.get('last_epoch_gain', '?')}: {'met' if seeds.get('on_plateau') else 'missed'}).",
    ]
    if "precision_gap_test_map50" in seeds:
        verdict = "met" if seeds.get("precision_gap_within_limit") else "missed"
        lines.append(
            f"Precisions apart, their mean test mAP@.5 differ by "
            f"{num(seeds['precision_gap_test_map50'], '.4f')} and mAP@.5:.95 by "
            f"{num(seeds['precision_gap_test_map'], '.4f')} "
            f"(target ≤ {limits.get('precision_gap', '?')}: {verdict})."
        )
    return [*lines, "", "![valid mAP per epoch, each seed and precision](seeds.png)"]  # qdet-seeds draws it


def _threads(row: dict, seeds: dict) -> str:
    """How a seed row trained: its own threads and jobs, or the file's (older files kept one)."""
    threads, jobs = row.get("threads", seeds.get("threads", "?")), row.get("jobs", seeds.get("jobs", 1))
    return f"{threads} thread{'s' if threads != 1 else ''}" + (f", {jobs} at a time" if jobs != 1 else "")


def search_table(search: dict | None) -> list[str]:
    """The accuracy-budget search (``metrics/quant_search.json``), one row a step."""
    if not search or search.get("search") != "auto":
        return ["`quant.search` is off: PTQ went to convert as calibrated."]
    lines = [
        f"Budget: valid mAP@.5 may drop {num(search['max_drop'], '.3f')} from float's "
        f"{num(search['reference_map50'], '.3f')}; {search['evaluations']} evaluation(s); "
        + (
            "**met**"
            if search["met"]
            else "**missed**: the most accurate plan found is kept; QAT on it is the next step"
        )
        + ". Kernel time is the quantized modules' MACs at this CPU's best-case int8/fp32 convolution rates "
        "(an estimate that orders plans, not a latency).",
        "",
        "| step | kept float | valid mAP@.5 [95% CI] | drop | kernel ms (est.) | why |",
        "|---|---|---|---|---|---|",
    ]
    for i, step in enumerate(search["steps"]):
        mark = " **(chosen)**" if i == search["chosen"] else ""
        lo, hi = step["map50_ci95"]
        lines.append(
            f"| {i}{mark} | {', '.join(step['kept_float']) or '-'} | "
            f"{step['map50']:.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{search['reference_map50'] - step['map50']:+.3f} | {step['latency_ms']:.2f} | {step['why']} |"
        )
    return lines


def render(
    *,
    commit: str,
    breakdown: dict,
    preprocess: dict,
    train: dict,
    convert: dict,
    evaluation: dict,
    benchmark: dict,
    register: dict,
    plots: list[str],
    search: dict | None = None,
    seeds: dict | None = None,
    recipe: str = "",
) -> str:
    """The page. Every argument is a metric file of the run, read as it is."""
    environment = breakdown.get("environment", {})
    best_float, best_peer = benchmark.get("best_float"), benchmark.get("best_int8_peer")
    champion = register.get("champion")
    lines = [
        f"# qdet results: {preprocess.get('dataset', '?')}, {register.get('model_name', '?')}",
        "",
        f"Written by the pipeline's report stage from `metrics/*.json` of commit `{commit}`; "
        "nothing here is typed by hand. Intervals are 95% bootstrap intervals (images for "
        "accuracy, benchmark rounds for speed, paired).",
        "",
        "## Machine",
        *machine(environment),
        "",
        "## Data and float training",
        f"- images: train {preprocess.get('train', {}).get('images', '?')}, "
        f"valid {preprocess.get('valid', {}).get('images', '?')} (watched while training), "
        f"test {preprocess.get('test', {}).get('images', '?')} ({preprocess.get('test_split', '?')}; "
        "every accuracy below is on test: nothing was tuned on it)",
        *([f"- test split rule: {preprocess['test_split_why']}"] if "test_split_why" in preprocess else []),
        f"- float training: {train.get('epochs', '?')} epochs in {train.get('precision', 'fp32')} "
        f"({train.get('precision_why', 'before train.precision')}), "
        f"{num(train.get('train_seconds_this_run'), '.0f')} s; valid mAP@.5 "
        f"{num(train.get('val_map50'), '.3f')} at the end, "
        f"{num(train.get('val_map50_last_epoch_gain'), '+.3f')} from the last epoch",
        "",
        "### The float recipe across seeds",
        *seed_table(seeds, recipe),
        "",
        "## int8 artifacts",
        *int8_artifacts(convert, evaluation, benchmark),
        "",
        "### Accuracy to a budget (`quant.max_drop`, valid split)",
        *search_table(search),
        "",
        "## Accuracy",
        *accuracy_table(evaluation),
        "",
        "## Speed",
        f"Best float (the fastest row that is not int8): **{label(best_float) if best_float else '-'}**; "
        f"best int8 peer: **{label(best_peer) if best_peer else '-'}**.",
        "",
        *regime_lines(benchmark),
        *speed_table(benchmark.get("variants", {})),
        "",
        "### Throughput, every core busy",
        *throughput_lines(benchmark),
        "",
        "### qdet's int8 where users deploy: ONNX QDQ and OpenVINO IR",
        *deploy_lines(evaluation, benchmark),
        "",
        "## Where the time goes",
        *time_per_part(breakdown),
        "",
        "### Against the int8 floor",
        *floor_lines(benchmark, champion),
        "",
        "## Champion",
        f"Run's champion: **{champion or 'none'}**; alias `{register.get('alias')}` "
        f"{'moved' if register.get('alias_moved') else 'not moved'}: {register.get('alias_reason', '-')}.",
        "",
        *(f"- {variant}: {why}" for variant, why in register.get("why", {}).items()),
        "",
        "## Plots",
        *(f"- [{what}](../plots/{name})" for name, what in PLOTS if name in plots),
        "",
    ]
    return "\n".join(lines)
