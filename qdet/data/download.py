"""The download stage's job: put a dataset's raw files in ``raw/<dataset>/`` from the source."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from qdet.config import Config
from qdet.core.files import md5sum
from qdet.data.archives import (
    OFFICIAL,
    SourceError,
    copy_folder,
    http_download,
    safe_extract,
    verify_md5,
)
from qdet.data.synthetic import GENERATORS

STRUCTURE = {"gtsdb": "gt.txt", "pennfudan": "PNGImages", "voc": "Annotations"}


def verify_structure(dataset: str, target: Path, origin: str) -> None:
    marker = STRUCTURE[dataset]
    if not any(target.rglob(marker)):
        raise SourceError(f"{origin}: no {marker} inside; not a {dataset} dataset in its published layout")


def local_source(cfg: Config) -> Path | None:
    """``data.source`` when it names a local archive or folder."""
    return None if cfg.data.source in ("synthetic", "download") else Path(cfg.data.source).expanduser()


def source_identity(cfg: Config, previous: dict) -> dict[str, object]:
    """Everything ``raw/<dataset>`` is made from, the *content* of a local source included (a
    file replaced at the same path must count as a change). A file's md5 is reused from
    ``previous`` while its size, mtime and inode are unchanged, as DVC does; a folder is
    identified by its files' names, sizes and mtimes."""
    identity: dict[str, object] = {"dataset": cfg.dataset, "source": cfg.data.source, "md5": cfg.data.md5}
    if cfg.data.source == "synthetic":
        identity |= {"seed": cfg.data.seed, "synthetic": dataclasses.asdict(cfg.data.synthetic)}
    path = local_source(cfg)
    if path is None or not path.exists():
        return identity
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = "\n".join(f"{p.relative_to(path)} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in files)
        return identity | {"content": hashlib.md5(listing.encode()).hexdigest()}
    st = path.stat()
    stat = [st.st_size, st.st_mtime_ns, st.st_ino]
    known = previous.get("stat") == stat and previous.get("content")
    return identity | {"stat": stat, "content": known or md5sum(path)}


def stamp_path(downloads: Path, dataset: str) -> Path:
    """What ``raw/<dataset>`` was last made from; beside the downloads, outside DVC's outputs
    (a changed stat with unchanged content must not look like new raw data)."""
    return downloads / f"{dataset}.source.json"


def up_to_date(cfg: Config, raw: Path, downloads: Path) -> tuple[dict | None, dict]:
    """(the summary of the last acquisition if ``raw/<dataset>`` still matches the source, else
    None; the current identity). The stage runs on every ``dvc repro`` (a local source's content
    is not a path DVC can watch), so this is what keeps an unchanged source a no-op."""
    stamp = stamp_path(downloads, cfg.dataset)
    previous = json.loads(stamp.read_text()) if stamp.exists() else {}
    identity = source_identity(cfg, previous.get("identity", {}))
    if previous.get("identity") == identity and (raw / cfg.dataset).is_dir():
        return previous["summary"], identity
    return None, identity


def acquire(
    cfg: Config,
    raw: Path,
    downloads: Path,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[dict[str, object], bool]:
    """Fill ``raw/<dataset>`` from ``data.source`` unless it is up to date; returns what was
    done (for the summary) and whether anything was."""
    done, identity = up_to_date(cfg, raw, downloads)
    if done is not None:
        return done, False
    summary = fill(cfg, raw, downloads, progress)
    downloads.mkdir(parents=True, exist_ok=True)
    stamp_path(downloads, cfg.dataset).write_text(
        json.dumps({"identity": identity, "summary": summary}, indent=1)
    )
    return summary, True


def fill(
    cfg: Config,
    raw: Path,
    downloads: Path,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, object]:
    target = raw / cfg.dataset
    stamp_path(downloads, cfg.dataset).unlink(missing_ok=True)
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
        GENERATORS[cfg.dataset](target, cfg.data.synthetic, cfg.data.seed)
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
