"""Bring a raw dataset to disk: official download (resumable, verified), local archive, or folder.

Archives are extracted safely: an entry whose path would land outside the target folder is refused.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qdet.errors import QdetError
from qdet.files import md5sum


class SourceError(QdetError):
    """Download, checksum or archive problem; the message names the file or URL."""


@dataclass(frozen=True)
class OfficialArchive:
    url: str
    file_name: str
    md5: str | None  # None: verified by structure only
    root: str  # top-level folder inside the archive


OFFICIAL = {
    "gtsdb": OfficialArchive(
        url="https://sid.erda.dk/public/archives/ff17dc924eba88d5d01a807357d6614c/FullIJCNN2013.zip",
        file_name="FullIJCNN2013.zip",
        md5=None,
        root="FullIJCNN2013",
    ),
    "pennfudan": OfficialArchive(
        url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
        file_name="PennFudanPed.zip",
        md5="5aaa3dee905cef73325923716e38fc6d",
        root="PennFudanPed",
    ),
}

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


def verify_md5(path: Path, expected: str) -> None:
    actual = md5sum(path)
    if actual != expected.lower():
        raise SourceError(f"{path}: wrong checksum: md5 is {actual}, expected {expected}")


def http_download(url: str, dest: Path, progress: Progress | None = None, timeout: float = 15) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` with an HTTP Range request."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SourceError(
            f"cannot download {url}: {exc}. Offline? Put the archive on disk and set "
            f"data.source to its path (e.g. data.source: ~/Downloads/{dest.name}), "
            "or use data.source: synthetic"
        ) from exc
    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"
        done = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length else None
        with open(part, mode) as f:
            while block := response.read(1 << 16):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done != total:
        raise SourceError(f"{url}: download stopped at {done} of {total} bytes; rerun to resume")
    part.replace(dest)
    return dest


def safe_extract(archive: Path, target: Path) -> list[str]:
    """Extract a zip into ``target``; refuse entries escaping it; return the top-level names."""
    target = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise SourceError(f"{archive}: corrupt archive, entry {bad} fails its CRC check")
            for info in zf.infolist():
                dest = (target / info.filename).resolve()
                if not dest.is_relative_to(target) or Path(info.filename).is_absolute():
                    raise SourceError(
                        f"{archive}: entry {info.filename!r} would be written outside {target}; "
                        "refusing to extract"
                    )
            zf.extractall(target)
            return sorted({Path(n).parts[0] for n in zf.namelist() if Path(n).parts})
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{archive}: not a readable zip archive (truncated?): {exc}") from exc
    except EOFError as exc:
        raise SourceError(f"{archive}: archive ends early (truncated): {exc}") from exc


def copy_folder(src: Path, target: Path) -> None:
    """A local folder source: copied as is (the user's own layout, e.g. VOC)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target)
