"""Small file helpers every stage needs, kept apart so writing JSON imports no heavy library."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def write_json(data: Any, path: Path) -> None:
    """Indented JSON (DVC metrics, reports), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
