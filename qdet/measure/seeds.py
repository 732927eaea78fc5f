"""Does the float recipe land in the same place whatever the seed? The float model trained at
each seed, by the pipeline's own download, preprocess and train commands (from ``dvc.yaml``),
each in a scratch folder with ``seed`` changed in a copy of params.yaml: what
``dvc exp run -S seed=N`` runs up to train, without touching the workspace. The seed drives the
synthetic data, the splits, the initial weights and the batch order, so the spread is the
recipe's, not one dataset's::

    python -m qdet.measure.seeds 0 1 2 --out reports/seeds.json

The report stage shows the table (``reports/seeds.json``), with whether its recipe is this run's.
"""

from __future__ import annotations

import hashlib
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

from qdet.core.checkpoint import content_digest
from qdet.core.console import console, exit_on_error
from qdet.core.cpu import cpu_info
from qdet.core.errors import QdetError
from qdet.core.files import read_json, write_json
from qdet.tracking.run import git_commit

app = typer.Typer(add_completion=False)
STAGES = ("download", "preprocess", "train")  # what the float model depends on
RECIPE = ("dataset", "backbone", "data", "model", "train")  # params of the float model but the seed
SPREAD_LIMIT = 0.03  # issue 21: three seeds within 3 points of valid mAP@.5
PLATEAU_LIMIT = 0.01  # the last epoch adds at most 1 point


class SeedRunFailed(QdetError):
    """A seed's stage command failed; the message names the seed, the stage and its log."""


def recipe_digest(params: dict[str, Any]) -> str:
    """A short digest of what the float model is trained from, the seed left out (threads too:
    they change speed, not the recipe)."""
    recipe = {k: params.get(k) for k in RECIPE}
    recipe["train"] = {k: v for k, v in (recipe["train"] or {}).items() if k not in ("threads", "workers")}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


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


def train_seed(repo: Path, params: dict[str, Any], seed: int, threads: int | None) -> dict[str, Any]:
    """Run download -> preprocess -> train for ``seed`` in a scratch folder; the train stage's
    metrics and per-epoch valid mAP@.5, and the wall time."""
    with tempfile.TemporaryDirectory(prefix=f"qdet-seed{seed}-") as tmp:
        work = Path(tmp)
        (work / "stages").symlink_to(repo / "stages")
        seeded = _seed_params(params, seed, repo)
        if threads:
            seeded["train"]["threads"] = threads
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
        history = (work / "metrics" / "train_history.csv").read_text().splitlines()
    header = history[0].split(",")
    column = header.index("val_map50")
    curve = [float(line.split(",")[column]) for line in history[1:]]
    return {
        "seed": seed,
        "data_digest": data,
        "val_map50": train["val_map50"],
        "val_map50_per_epoch": curve,
        "val_map50_last_epoch_gain": train.get("val_map50_last_epoch_gain"),
        "seconds": time.perf_counter() - start,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spread across seeds and the worst last-epoch gain, against the targets."""
    finals = [r["val_map50"] for r in rows]
    gains = [r["val_map50_last_epoch_gain"] for r in rows if r["val_map50_last_epoch_gain"] is not None]
    spread = max(finals) - min(finals)
    worst = max(gains) if gains else None
    return {
        "spread": spread,
        "spread_within_limit": spread <= SPREAD_LIMIT,
        "worst_last_epoch_gain": worst,
        "on_plateau": worst is not None and worst <= PLATEAU_LIMIT,
        "limits": {"spread": SPREAD_LIMIT, "last_epoch_gain": PLATEAU_LIMIT},
    }


@app.command()
@exit_on_error
def main(
    seeds: list[int] = typer.Argument(..., help="seeds to train, e.g. 0 1 2"),
    params: Path = typer.Option(Path("params.yaml"), help="the recipe (its seed is replaced)"),
    threads: int = typer.Option(0, help="torch threads per run (0: train.threads of params)"),
    jobs: int = typer.Option(1, min=1, help="seeds trained at the same time"),
    out: Path = typer.Option(Path("reports/seeds.json")),
) -> None:
    repo = Path.cwd()
    base = yaml.safe_load(params.read_text())
    commit = git_commit(repo)  # the code the runs start from (HEAD may move while they train)
    rows = []
    label = ", ".join(map(str, seeds))
    with console.status(f"seeds {label}: download, preprocess and train each, {jobs} at a time"):
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # each training is its own process
            runs = {pool.submit(train_seed, repo, base, seed, threads or None): seed for seed in seeds}
            for run in as_completed(runs):
                row = run.result()
                rows.append(row)
                curve = " / ".join(f"{v:.3f}" for v in row["val_map50_per_epoch"])
                console.print(
                    f"seed {row['seed']}: valid mAP@.5 per epoch {curve}; last epoch "
                    f"{row['val_map50_last_epoch_gain']:+.3f}; {row['seconds']:.0f} s"
                )
    rows.sort(key=lambda r: r["seed"])
    summary = summarize(rows)
    console.print(
        f"spread {summary['spread']:.3f} (limit {SPREAD_LIMIT}); worst last-epoch gain "
        f"{summary['worst_last_epoch_gain']:+.3f} (limit {PLATEAU_LIMIT})"
    )
    cpu = cpu_info()
    machine = {"model": cpu.get("model name", "?"), "family": cpu.get("cpu family", "?")}
    record = {"recipe": recipe_digest(base), "commit": commit, "cpu": machine}
    record["threads"] = threads or base.get("train", {}).get("threads")
    write_json({**record, "jobs": jobs, "seeds": rows, **summary}, out)


if __name__ == "__main__":
    app()
