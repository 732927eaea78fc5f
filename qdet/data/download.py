"""The download stage's job: put a dataset's raw files in ``raw/<dataset>/`` from the source."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from qdet.config import Config
from qdet.data.archives import (
    OFFICIAL,
    SourceError,
    copy_folder,
    http_download,
    safe_extract,
    verify_md5,
)
from qdet.data.synthetic import GENERATORS
from qdet.files import md5sum

STRUCTURE = {"gtsdb": "gt.txt", "pennfudan": "PNGImages", "voc": "Annotations"}


def verify_structure(dataset: str, target: Path, origin: str) -> None:
    marker = STRUCTURE[dataset]
    if not any(target.rglob(marker)):
        raise SourceError(f"{origin}: no {marker} inside; not a {dataset} dataset in its published layout")


def acquire(
    cfg: Config,
    raw: Path,
    downloads: Path,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, object]:
    """Fill ``raw/<dataset>`` from ``data.source``; returns what was done, for the summary."""
    target = raw / cfg.dataset
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    source = cfg.data.source
    if source == "synthetic":
        if cfg.dataset not in GENERATORS:
            raise SourceError(
                f"data.source: synthetic is not available for dataset {cfg.dataset}; "
                f"valid: {', '.join(GENERATORS)}"
            )
        GENERATORS[cfg.dataset](target, cfg.data.synthetic, cfg.seed)
        return {"source": "synthetic", "images": cfg.data.synthetic.num_images}
    if source == "download":
        if cfg.dataset not in OFFICIAL:
            raise SourceError(f"data.source: download has no official URL for {cfg.dataset}")
        official = OFFICIAL[cfg.dataset]
        archive = downloads / official.file_name
        if not archive.exists():
            http_download(official.url, archive, progress)
        expected = official.md5 if cfg.data.md5 == "auto" else cfg.data.md5
    else:
        archive = Path(source).expanduser()
        if not archive.exists():
            raise SourceError(
                f"data.source: {archive} does not exist (expected synthetic, "
                "download, or the path of a local archive or folder)"
            )
        expected = None if cfg.data.md5 in ("auto", "none") else cfg.data.md5
    if archive.is_dir():
        copy_folder(archive, target / archive.name)
    else:
        if expected and expected != "none":
            verify_md5(archive, expected)
        safe_extract(archive, target)
    verify_structure(cfg.dataset, target, str(archive))
    return {"source": str(archive), "md5": md5sum(archive) if archive.is_file() else None}
