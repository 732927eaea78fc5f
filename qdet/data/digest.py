"""What a score was computed on, as one digest: scores compare across runs only when it is equal.

Apart from the processed-data code on purpose: only the register stage runs it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from qdet.core.files import md5sum
from qdet.data.processed import read_split


def evaluation_digest(processed: Path, split: str) -> str:
    """What a score was computed on: the split's rows (images, sizes, boxes), the class names
    and every image's bytes. Two runs' scores compare only when this is equal."""
    digest = hashlib.md5()
    for name in (f"{split}.csv", "classes.txt"):
        digest.update(md5sum(processed / name).encode())
    for record in read_split(processed, split):
        digest.update(f"{record.file_name}:{md5sum(record.source)}".encode())
    return digest.hexdigest()
