"""MLflow in one place: one parent run per pipeline execution, a nested run per stage.

Stages run as separate processes, so the parent run is found again by a tag (``qdet.pipeline``):
the DVC experiment name under ``dvc exp run``, else a hash of the git commit and the params file.
The parent is re-opened for each stage and closed again when the stage ends, so a stage that DVC
skips (cached) leaves nothing in RUNNING. Logging failures during a stage (a server lost
mid-training) do not stop the work: they are kept in a local JSONL file and reported at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import requests

from qdet.errors import QdetError
from qdet.lifeline import deferred_signal


class TrackingUnavailable(QdetError):
    """The tracking store cannot be reached; the message names the URI."""


def default_uri(root: Path) -> str:
    """The embedded store, absolute so queued ``dvc exp`` runs in temp copies share it."""
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


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


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any training, when the store is not there or cannot answer."""
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        try:
            requests.get(base + "/health", timeout=timeout).raise_for_status()
        except requests.RequestException as exc:
            raise TrackingUnavailable(
                f"MLflow tracking server {uri} is not reachable ({exc.__class__.__name__}); "
                "start it, or unset MLFLOW_TRACKING_URI to use the local sqlite store"
            ) from None
        try:  # /health answers even when the server's own store is broken: ask the API too
            response = requests.get(
                base + "/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=timeout
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            status = getattr(exc.response, "status_code", None)
            raise TrackingUnavailable(
                f"MLflow tracking server {uri} answers /health but its API fails "
                f"({status or exc.__class__.__name__}); check the server's log and its backend "
                "store, or unset MLFLOW_TRACKING_URI to use the local sqlite store"
            ) from None
    elif uri.startswith("sqlite:///"):
        check_sqlite(Path(uri.removeprefix("sqlite:///")), timeout)


def check_sqlite(db: Path, timeout: float) -> None:
    """The sqlite store can be read and written: a locked, read-only or corrupt ``mlflow.db``
    is one line naming it, before the stage does any work (not a long traceback at its end)."""
    import sqlite3

    if not db.parent.is_dir():
        raise TrackingUnavailable(f"MLflow store {db}: folder {db.parent} does not exist")
    if not db.exists():
        if not os.access(db.parent, os.W_OK):
            raise TrackingUnavailable(f"MLflow store {db}: folder {db.parent} is not writable")
        return  # MLflow creates it
    try:
        with sqlite3.connect(db, timeout=timeout) as connection:
            connection.execute("PRAGMA schema_version").fetchone()  # reads the header: corrupt?
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock: locked?
            # a real write, rolled back: a read-only file or folder (no journal) passes BEGIN
            # and fails only on the first write, which would be after the stage's work
            connection.execute(f"PRAGMA user_version = {int(version)}")
            connection.rollback()
    except sqlite3.Error as exc:
        hint = {
            "database is locked": "another process holds it; wait, or stop that process",
            "attempt to write a readonly database": "make it writable, or set MLFLOW_TRACKING_URI",
            "unable to open database file": f"make {db.parent} writable (sqlite writes a journal beside it)",
            "file is not a database": "it is not a sqlite file: move it away, or set MLFLOW_TRACKING_URI",
        }.get(str(exc), "set MLFLOW_TRACKING_URI to another store")
        raise TrackingUnavailable(f"MLflow store {db}: {exc}; {hint}") from None


def _log_errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, OSError)


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a sqlite store (a no-op for servers, which serialise themselves)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///") + ".lock")
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def short_http_retries() -> None:
    """MLflow retries a failed HTTP call 7 times with doubling waits (minutes per call): with
    the server gone mid-training every epoch would stall. A few seconds per call is enough for a
    blip; after that the record goes to the local copy. A user's own settings win."""
    for key, value in (
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "15"),
    ):
        os.environ.setdefault(key, value)


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
        import mlflow

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
        import mlflow

        if exc_type is None:
            status = "FINISHED"
        else:  # Ctrl-C and SIGTERM (qdet.stage.Terminated) are KeyboardInterrupts
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
        import mlflow
        from mlflow.entities import Metric

        numeric = numeric_metrics(metrics)
        if not on_parent:
            self._safe(mlflow.log_metrics, numeric, step=step)
        elif self.parent_id and numeric:
            now = int(time.time() * 1000)
            batch = [Metric(k, v, now, step or 0) for k, v in numeric.items()]
            self._safe(mlflow.MlflowClient().log_batch, self.parent_id, metrics=batch)

    def log_series(self, key: str, values: list[float], steps) -> None:
        """One metric at many steps, in one request (per-iteration loss)."""
        import mlflow
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(v), now, int(s)) for v, s in zip(values, steps, strict=True)]
        for first in range(0, len(batch), 1000):  # the store's limit per request
            self._safe(mlflow.MlflowClient().log_batch, self.run_id, metrics=batch[first : first + 1000])

    def log_artifact(self, path: Path, artifact_path: str | None = None, on_parent: bool = False) -> None:
        """To the stage's run, or with ``on_parent`` to the pipeline's run (its key plots)."""
        import mlflow

        if not path.exists():
            return
        if on_parent and self.parent_id:
            self._safe(mlflow.MlflowClient().log_artifact, self.parent_id, str(path), artifact_path)
        else:
            self._safe(mlflow.log_artifact, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

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
