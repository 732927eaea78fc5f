"""Does the float recipe land in the same place whatever the seed? The float model trained at
each seed, by the pipeline's own download, preprocess and train commands (from ``dvc.yaml``),
each in a scratch folder with ``seed`` changed in a copy of params.yaml: what
``dvc exp run -S seed=N`` runs up to train, without touching the workspace, and then scored on
the test split as the evaluate stage scores float eager. The seed drives the initial weights,
the batch order and the augmentation; the data and its splits have their own seed
(``data.seed``), as a real archive does not change with the training seed, so every seed is
scored on the same test images and the spread is the training's: what another CPU's numerics
could move::

    qdet-seeds 0 1 2 --precision fp32 --precision bf16 --out reports/seeds.json

``--merge`` joins the rows of earlier seed files of the same recipe (a table trained over several
sessions, or seeds added later); each row keeps the threads, jobs and commit it ran with.

``--precision`` trains every seed in each precision named (``train.precision``), so the table
also says whether the recipe's end point depends on what the CPU computes in: the gap between
the precisions' mean test mAP@.5 and mAP@.5:.95. The report stage shows the table
(``reports/seeds.json``), with whether its recipe is this run's.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import typer
import yaml

from qdet.core.checkpoint import content_digest, recipe_digest
from qdet.core.console import console, exit_on_error
from qdet.core.errors import QdetError
from qdet.core.files import read_json, write_json
from qdet.data.dataset import load_split
from qdet.measure.accuracy import evaluate_detector
from qdet.measure.speed import environment
from qdet.report.plots import seed_curves
from qdet.tracking.run import git_commit
from qdet.variants.artifacts import load_variant
from qdet.variants.table import REFERENCE

app = typer.Typer(add_completion=False)
STAGES = ("download", "preprocess", "train")  # what the float model depends on
SPREAD_LIMIT = 0.03  # issue 21: three seeds within 3 points of (test) mAP@.5
PLATEAU_LIMIT = 0.01  # the last epoch adds at most 1 point, of valid mAP@.5 and of mAP@.5:.95
PRECISION_GAP_LIMIT = 0.02  # issue 38: fp32 and bf16 training end within 2 points (test)


class SeedRunFailed(QdetError):
    """A seed's stage command failed; the message names the seed, the stage and its log."""


def _stage_commands(repo: Path) -> list[str]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return [" ".join(stages[name]["cmd"].split()) for name in STAGES]


def _seed_params(params: dict[str, Any], seed: int, repo: Path) -> dict[str, Any]:
    """params.yaml for one seed, run from a scratch folder: untracked (the workspace's MLflow
    store is the pipeline's) and a local data source made absolute."""
    out = json.loads(json.dumps(params))
    out["seed"] = seed
    out.setdefault("tracking", {})["enabled"] = False
    source = out.get("data", {}).get("source", "synthetic")
    if source not in ("synthetic", "download") and not Path(source).is_absolute():
        out["data"]["source"] = str((repo / source).resolve())
    return out


def train_seed(
    repo: Path, params: dict[str, Any], seed: int, threads: int | None, precision: str | None = None
) -> dict[str, Any]:
    """Run download -> preprocess -> train for ``seed`` (in ``precision``, else the recipe's) in a
    scratch folder, then score the float model on the test split; per-epoch valid mAP@.5 and
    mAP@.5:.95, test mAP@.5 and mAP@.5:.95, and the wall time."""
    with tempfile.TemporaryDirectory(prefix=f"qdet-seed{seed}-") as tmp:
        work = Path(tmp)
        (work / "stages").symlink_to(repo / "stages")
        seeded = _seed_params(params, seed, repo)
        if threads:
            seeded["train"]["threads"] = threads
        if precision:
            seeded["train"]["precision"] = precision
        (work / "params.yaml").write_text(yaml.safe_dump(seeded, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        for name, cmd in zip(STAGES, _stage_commands(repo), strict=True):
            log = work / f"{name}.log"
            with log.open("w") as out:
                argv = [sys.executable if a == "python" else a for a in shlex.split(cmd)]
                done = subprocess.run(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT, env=env)
            if done.returncode:
                tail = log.read_text().strip().splitlines()[-5:]
                raise SeedRunFailed(f"seed {seed}: stage {name} failed:\n" + "\n".join(tail))
        train = read_json(work / "metrics" / "train.json")
        data = content_digest(work / "data" / "processed")[:12]
        with (work / "metrics" / "train_history.csv").open(newline="") as f:
            history = list(csv.DictReader(f))
        test = score_on_test(work, seeded["train"]["threads"])
    curve = [float(row["val_map50"]) for row in history]
    strict = [float(row["val_map"]) for row in history]
    return {
        "seed": seed,
        "precision": train.get("precision", "fp32"),
        "data_digest": data,
        "train_loss": train["loss"],
        "val_map50": train["val_map50"],
        "val_map50_per_epoch": curve,
        "val_map50_last_epoch_gain": train.get("val_map50_last_epoch_gain"),
        "val_map_per_epoch": strict,
        "val_map_last_epoch_gain": strict[-1] - strict[-2] if len(strict) > 1 else None,
        "test_map50": test["map50"],
        "test_map": test["map"],
        "seconds": time.perf_counter() - start,
    }


def score_on_test(work: Path, threads: int) -> dict[str, float]:
    """mAP@.5 and mAP@.5:.95 of the float model a scratch run trained, on its test split: the
    evaluate stage's float eager (same loader, same scoring), what ``dvc exp run -S seed=N``
    reports."""
    detector = load_variant(REFERENCE, work / "models" / "float.pt", threads)
    dataset = load_split(work / "data" / "processed", "test")
    out = work / "eval"
    out.mkdir()
    stats = evaluate_detector(detector, dataset, out, REFERENCE).stats
    return {"map50": float(stats["map50"]), "map": float(stats["map"])}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spread of test mAP@.5 across seeds (the reported accuracy; valid's beside it) and the
    worst last-epoch gain on valid, of mAP@.5 and of mAP@.5:.95 (the curves training watches),
    against the targets; with several precisions, each one's and the gap between their means."""
    gains = [
        r[key]
        for r in rows
        for key in ("val_map50_last_epoch_gain", "val_map_last_epoch_gain")
        if r.get(key) is not None
    ]
    spread = _spread([r["test_map50"] for r in rows])
    worst = max(gains) if gains else None
    out: dict[str, Any] = {
        "spread": spread,
        "valid_spread": _spread([r["val_map50"] for r in rows]),
        "spread_within_limit": spread <= SPREAD_LIMIT,
        "worst_last_epoch_gain": worst,
        "on_plateau": worst is not None and worst <= PLATEAU_LIMIT,
        "limits": {
            "spread": SPREAD_LIMIT,
            "last_epoch_gain": PLATEAU_LIMIT,
            "precision_gap": PRECISION_GAP_LIMIT,
        },
    }
    precisions = sorted({r.get("precision", "fp32") for r in rows})
    if len(precisions) > 1:
        by = {p: [r for r in rows if r.get("precision", "fp32") == p] for p in precisions}
        out["per_precision"] = {p: summarize(rs) for p, rs in by.items()}
        for key in ("test_map50", "test_map"):
            means = [sum(r[key] for r in rs) / len(rs) for rs in by.values()]
            out[f"precision_gap_{key}"] = _spread(means)
        out["precision_gap_within_limit"] = all(
            out[f"precision_gap_{k}"] <= PRECISION_GAP_LIMIT for k in ("test_map50", "test_map")
        )
        out["spread_within_limit"] = all(s["spread_within_limit"] for s in out["per_precision"].values())
    return out


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


@app.command()
@exit_on_error
def main(
    seeds: list[int] = typer.Argument(None, help="seeds to train, e.g. 0 1 2"),
    params: Path = typer.Option(Path("params.yaml"), help="the recipe (its seed is replaced)"),
    threads: int = typer.Option(0, help="torch threads per run (0: train.threads of params)"),
    jobs: int = typer.Option(1, min=1, help="seeds trained at the same time"),
    precision: list[str] = typer.Option(
        [], help="train.precision to train every seed in (repeat: --precision fp32 --precision bf16)"
    ),
    out: Path = typer.Option(Path("reports/seeds.json")),
    merge: list[Path] = typer.Option(
        [],
        help="earlier seed files of the same recipe and CPU whose rows join these (a seed and "
        "precision trained now replaces its row; among files the first named wins)",
    ),
) -> None:
    repo = Path.cwd()
    base = yaml.safe_load(params.read_text())
    seeds = seeds or []
    if not seeds and not merge:
        raise typer.BadParameter("name seeds to train, or --merge seed files to combine")
    used = threads or base.get("train", {}).get("threads")
    machine, recipe = environment(used), recipe_digest(base)
    earlier = [_rows_of(path, recipe, machine) for path in merge]
    for p in precision:
        if p not in ("auto", "fp32", "bf16"):
            raise typer.BadParameter(f"--precision: {p!r} is not one of auto, fp32, bf16")
    commit = git_commit(repo)  # the code the runs start from (HEAD may move while they train)
    label = ", ".join(map(str, seeds)) + (f" in {' and '.join(precision)}" if precision else "")
    plan = [(seed, p) for p in (precision or [None]) for seed in seeds]
    trained = _train(plan, repo, base, threads, jobs, label) if plan else []
    rows = [{**row, "threads": used, "jobs": jobs, "commit": commit} for row in trained]
    seen = {(r["seed"], r.get("precision")) for r in rows}
    for row in (r for rs in earlier for r in rs):  # this run's rows first, then the files in order
        if (row["seed"], row.get("precision")) not in seen:
            seen.add((row["seed"], row.get("precision")))
            rows.append(row)
    rows.sort(key=lambda r: (str(r.get("precision")), r["seed"]))
    summary = summarize(rows)
    console.print(
        f"test mAP@.5 spread {summary['spread']:.4f} (limit {SPREAD_LIMIT}); worst last-epoch gain "
        f"{summary['worst_last_epoch_gain']:+.4f} (limit {PLATEAU_LIMIT})"
    )
    if "precision_gap_test_map50" in summary:
        console.print(
            f"precision gap of the mean test mAP@.5 {summary['precision_gap_test_map50']:.4f}, of mAP@.5:.95 "
            f"{summary['precision_gap_test_map']:.4f} (limit {PRECISION_GAP_LIMIT})"
        )
    record = {"recipe": recipe, "commit": commit, "environment": machine}
    write_json({**record, "seeds": rows, **summary}, out)
    seed_curves(rows, out.with_suffix(".png"))
    console.print(f"written: {out}, {out.with_suffix('.png')} (the curves)")


def _train(
    plan: list[tuple[int, str | None]], repo: Path, base: dict[str, Any], threads: int, jobs: int, label: str
) -> list[dict[str, Any]]:
    """Each (seed, precision) of ``plan`` trained and scored, ``jobs`` at a time; a line each."""
    rows = []
    with console.status(f"seeds {label}: download, preprocess and train each, {jobs} at a time"):
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # each training is its own process
            runs = [pool.submit(train_seed, repo, base, seed, threads or None, p) for seed, p in plan]
            for run in as_completed(runs):
                row = run.result()
                rows.append(row)
                curve = " / ".join(f"{v:.3f}" for v in row["val_map50_per_epoch"])
                gains = f"{row['val_map50_last_epoch_gain']:+.3f} / {row['val_map_last_epoch_gain']:+.3f}"
                console.print(
                    f"seed {row['seed']} ({row['precision']}): valid mAP@.5 per epoch {curve}; the last "
                    f"epoch adds {gains} (mAP@.5 / mAP@.5:.95); test mAP@.5 {row['test_map50']:.3f}, "
                    f"mAP@.5:.95 {row['test_map']:.3f}; {row['seconds']:.0f} s"
                )
    return rows


def _rows_of(path: Path, recipe: str, machine: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier seed file, each with the threads, jobs and commit it ran with (older
    files kept them once, for all rows). A file of another recipe, or from another CPU (whose
    arithmetic is what the table compares), is refused, naming both."""
    if not path.is_file():
        raise typer.BadParameter(f"--merge: {path} does not exist")
    earlier = read_json(path)
    if earlier.get("recipe") != recipe:
        raise typer.BadParameter(
            f"--merge: {path} was measured on recipe {earlier.get('recipe')}, not this one ({recipe}): "
            "its seeds trained another model"
        )
    cpu = ("cpu", "cpu_family", "cpu_flags")
    theirs, ours = ({k: env.get(k) for k in cpu} for env in (earlier.get("environment", {}), machine))
    if theirs != ours:
        raise typer.BadParameter(f"--merge: {path} was measured on another CPU ({theirs}; this one: {ours})")
    shared = {k: earlier.get(k) for k in ("threads", "jobs", "commit")}
    return [{**shared, **row} for row in earlier.get("seeds", [])]


if __name__ == "__main__":
    app()
