"""MLflow in one place: one parent run per pipeline execution, a nested run per stage.

Stages run as separate processes, so the parent run is found again by a tag (``qdet.pipeline``):
the DVC experiment name under ``dvc exp run``, else a hash of the git commit and the params file.
The parent is re-opened for each stage and closed again when the stage ends, so a stage that DVC
skips (cached) leaves nothing in RUNNING. Logging failures during a stage (a server lost
mid-training) do not stop the work: they are kept in a local JSONL file and reported at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import requests

from qdet.core.lifeline import deferred_signal
from qdet.tracking.store import check_reachable, short_http_retries, store_lock
from qdet.tracking.summary import numeric_metrics


def git(args: list[str], cwd: Path | None = None) -> str | None:
    """Output of a git command, or None outside a repository or without git."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(root: Path) -> str:
    return git(["rev-parse", "HEAD"], root) or "unknown"


def pipeline_key(exp_name: str | None, commit: str, params_text: str) -> str:
    if exp_name:
        return f"exp-{exp_name}"
    return "repro-" + hashlib.sha1(f"{commit}\n{params_text}".encode()).hexdigest()[:12]


def _log_errors() -> tuple[type[BaseException], ...]:
    # MLflow loads when a run is logged (qdet-predict imports tracking without it)
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, OSError)


class StageRun(AbstractContextManager):
    """Nested MLflow run for one stage under the pipeline's parent run."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        stage: str,
        key: str,
        tags: dict[str, str],
        params: dict[str, Any],
        artifact_root: Path | None,
        offline_log: Path,
        started: float | None = None,
        source: str = "dvc repro",
    ) -> None:
        self.uri, self.experiment, self.stage, self.key = uri, experiment, stage, key
        self.tags, self.params, self.artifact_root = tags, params, artifact_root
        self.offline_log = offline_log
        self.started = started  # when the stage began its work (epoch s): the run's start time
        self.source = source  # the parent's Source in the UI: the command, not its first stage
        self.failed: list[str] = []
        self.run_id: str | None = None
        self.parent_id: str | None = None

    def __enter__(self) -> StageRun:
        check_reachable(self.uri)
        if self.uri.startswith(("http://", "https://")):
            short_http_retries()
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)

        mlflow.set_tracking_uri(self.uri)
        try:
            with deferred_signal(signal.SIGTERM):
                self._open_runs(mlflow)
        except KeyboardInterrupt as exc:  # held back until the runs exist: end them, then stop
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _open_runs(self, mlflow) -> None:
        # Parallel `dvc exp` workers share one store: the first use creates the sqlite schema,
        # the experiment and the parent run, and two workers doing that at once collide.
        with store_lock(self.uri):
            exp_id = self._experiment_id(mlflow.MlflowClient())
            self._open_parent(mlflow, exp_id)
        self._fail_orphans(mlflow.MlflowClient())
        # MLflow loads when a run is logged (qdet-predict imports tracking without it)
        from mlflow.tracking.context.registry import resolve_tags

        # Created with the stage's own start, not when it logs (evaluate and benchmark log at the
        # end): the run's duration in the UI is the stage's.
        tags = {**self.tags, "qdet.stage": self.stage, **process_tags(), "mlflow.parentRunId": self.parent_id}
        child = mlflow.MlflowClient().create_run(
            exp_id,
            start_time=int(self.started * 1000) if self.started else None,
            tags=resolve_tags(tags),
            run_name=self.stage,
        )
        mlflow.start_run(run_id=child.info.run_id, nested=True)
        self.run_id = child.info.run_id

    def _fail_orphans(self, client) -> None:
        """Stage runs of this pipeline left RUNNING by a process that is gone (kill -9, power
        loss) end as FAILED: the UI never shows a dead stage as running."""
        found = client.search_runs(
            [client.get_run(self.parent_id).info.experiment_id],
            f"tags.mlflow.parentRunId = '{self.parent_id}' and attributes.status = 'RUNNING'",
        )
        for run in found:
            if not process_alive(run.data.tags):
                self._safe(client.set_terminated, run.info.run_id, "FAILED")

    def _experiment_id(self, client) -> str:
        # MLflow loads when a run is logged (qdet-predict imports tracking without it)
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
        try:
            return client.create_experiment(self.experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by another worker (server stores)
            return client.get_experiment_by_name(self.experiment).experiment_id

    def _open_parent(self, mlflow, exp_id: str) -> None:
        found = mlflow.MlflowClient().search_runs(
            [exp_id],
            f"tags.`qdet.pipeline` = '{self.key}'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if found:
            self.parent_id = found[0].info.run_id
            mlflow.start_run(run_id=self.parent_id)
            return
        run = mlflow.start_run(
            experiment_id=exp_id,
            run_name=self.tags.get("qdet.run_name"),
            tags={**self.tags, "qdet.pipeline": self.key, "mlflow.source.name": self.source},
        )
        self.parent_id = run.info.run_id
        self._safe(mlflow.log_params, {k: str(v)[:500] for k, v in self.params.items()})

    def __exit__(self, exc_type, exc, tb) -> None:
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)

        if exc_type is None:
            status = "FINISHED"
        else:  # Ctrl-C and SIGTERM (qdet.pipeline.stage.Terminated) are KeyboardInterrupts
            status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        self._safe(mlflow.end_run, status)  # the stage run
        self._safe(mlflow.end_run, status)  # the parent: never left RUNNING between stages
        if self.failed:
            calls = Counter(entry.split(":", 1)[0] for entry in self.failed)
            which = ", ".join(f"{name} x{n}" for name, n in calls.items())
            print(
                f"MLflow: {len(self.failed)} record(s) could not be logged to {self.uri} ({which}); "
                f"local copy in {self.offline_log}",
                file=sys.stderr,
            )

    def call(self, fn, *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` for any MLflow call that can reach the store (the registry's
        too), through the same fallback: on failure it returns None, is counted, and goes to the
        offline JSONL."""
        return self._safe(fn, *args, **kwargs)

    def _safe(self, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except _log_errors() as err:
            self.failed.append(f"{fn.__name__}: {err}")
            self.offline_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.offline_log, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "time": time.time(),
                            "call": fn.__name__,
                            "args": [str(a) for a in args],
                            "kwargs": kwargs,
                            "error": str(err),
                        },
                        default=str,
                    )
                    + "\n"
                )
            return None

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, on_parent: bool = False
    ) -> None:
        """To the stage's run, or with ``on_parent`` to the pipeline's run instead (the summary
        a user compares runs by; never both, so no chart shows a figure twice)."""
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)
        from mlflow.entities import Metric  # with it

        numeric = numeric_metrics(metrics)
        if not on_parent:
            self._safe(mlflow.log_metrics, numeric, step=step)
        elif self.parent_id and numeric:
            now = int(time.time() * 1000)
            batch = [Metric(k, v, now, step or 0) for k, v in numeric.items()]
            self._safe(mlflow.MlflowClient().log_batch, self.parent_id, metrics=batch)

    def log_series(self, key: str, values: list[float], steps) -> None:
        """One metric at many steps, in one request (per-iteration loss)."""
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)
        from mlflow.entities import Metric  # with it

        now = int(time.time() * 1000)
        batch = [Metric(key, float(v), now, int(s)) for v, s in zip(values, steps, strict=True)]
        for first in range(0, len(batch), 1000):  # the store's limit per request
            self._safe(mlflow.MlflowClient().log_batch, self.run_id, metrics=batch[first : first + 1000])

    def log_artifact(self, path: Path, artifact_path: str | None = None, on_parent: bool = False) -> None:
        """To the stage's run, or with ``on_parent`` to the pipeline's run (its key plots)."""
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)

        if not path.exists():
            return
        if on_parent and self.parent_id:
            self._safe(mlflow.MlflowClient().log_artifact, self.parent_id, str(path), artifact_path)
        else:
            self._safe(mlflow.log_artifact, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow  # MLflow loads when a run is logged (qdet-predict imports tracking without it)

        self._safe(mlflow.set_tags, tags)


def process_tags() -> dict[str, str]:
    """Which process a stage run belongs to, so a later stage can tell whether it still lives."""
    return {"qdet.host": socket.gethostname(), "qdet.pid": str(os.getpid())}


def process_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by :func:`process_tags` still runs; a run on another host, or
    without the tags, counts as alive (it cannot be checked from here)."""
    if tags.get("qdet.host") != socket.gethostname() or not tags.get("qdet.pid", "").isdigit():
        return True
    try:
        os.kill(int(tags["qdet.pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NoRun(AbstractContextManager):
    """Tracking disabled: the same interface, doing nothing."""

    run_id = None
    parent_id = None
    failed: list[str] = []

    def __enter__(self) -> NoRun:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, on_parent: bool = False
    ) -> None:
        return None

    def log_series(self, key: str, values: list[float], steps) -> None:
        return None

    def log_artifact(self, path: Path, artifact_path: str | None = None, on_parent: bool = False) -> None:
        return None

    def set_tags(self, tags: dict[str, str]) -> None:
        return None
