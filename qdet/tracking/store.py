"""The MLflow store: where it is, whether it can be used before a stage works (one line naming
it when not), a lock for writers of a sqlite store, and short HTTP retries for a lost server."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from qdet.core.errors import QdetError


class TrackingUnavailable(QdetError):
    """The tracking store cannot be reached; the message names the URI."""


def default_uri(root: Path) -> str:
    """The embedded store, absolute so queued ``dvc exp`` runs in temp copies share it."""
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


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
