"""Small file helpers every stage needs, kept apart so writing JSON imports no heavy library."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qdet.core.errors import QdetError


class OutputError(QdetError):
    """An output that could not be written (disk full, read-only folder): the path and what to do."""


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(partial)`` to a temporary name beside ``path``, then rename: a full disk, a
    read-only folder or a kill leaves nothing under the name a later stage or a user would take
    for a result. A failure is one line naming ``path``."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")  # one per writer
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError as exc:
        hint = {
            errno.ENOSPC: "the disk is full: free space and rerun",
            errno.EDQUOT: "the disk quota is used up: free space and rerun",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "no permission to write there",
        }.get(exc.errno, "")
        why = exc.strerror or str(exc)
        raise OutputError(f"{path}: not written: {why}" + (f"; {hint}" if hint else "")) from None
    finally:
        partial.unlink(missing_ok=True)


def require_free_space(folders: list[Path], need: int, what: str) -> None:
    """Refuse, before any work, to start ``what`` with less than ``need`` bytes free where it
    writes: compilers and exporters that hit a full disk abort the process (SIGABRT, no message)
    and leave partial files behind."""
    for folder in folders:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        if free < need:
            raise OutputError(
                f"{folder}: {free / 1e9:.2f} GB free, {what} needs about {need / 1e9:.1f} GB; "
                "free space and rerun"
            )


def compile_room(out_dir: Path, model: Path) -> tuple[list[Path], int]:
    """Where a compiling stage writes (its outputs, the compiler's cache in the temp folder) and
    about how much it needs there: a GB for the cache plus ten copies of the float model."""
    return [out_dir, Path(tempfile.gettempdir())], 1_000_000_000 + 10 * model.stat().st_size


def files_with_suffix(folder: Path, suffixes: set[str]) -> list[Path]:
    """The files of ``folder`` and its subfolders whose suffix (any case) is one of ``suffixes``,
    by name: the one way a folder of images (or videos) is listed."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)


def write_json(data: Any, path: Path) -> None:
    """Indented JSON (DVC metrics, reports), creating the folder, written atomically."""
    text = json.dumps(data, indent=1)
    write_atomically(path, lambda partial: partial.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def stage_output(path: Path, key: str, stage: str) -> Any:
    """``key`` of a JSON file another stage wrote, or an error naming the file, the key and the
    fix (a missing, partial or older file is the usual cause)."""
    try:
        return read_json(path)[key]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise QdetError(f"{path}: no '{key}' in it ({type(e).__name__}); rerun: dvc repro {stage}") from None


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
