"""Bring a raw dataset to disk: official download (resumable, verified), local archive, or folder.

Archives are extracted safely: an entry whose path would land outside the target folder is refused.
"""

from __future__ import annotations

import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qdet.core.errors import QdetError
from qdet.core.files import md5sum


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


MAX_EXTRACTED_BYTES = 50 * 10**9  # GTSDB's full archive unpacks to ~1.7 GB
MAX_RATIO = 200  # unpacked / packed: images compress a few times, zip bombs a million


def check_bounds(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive that would unpack to more than MAX_EXTRACTED_BYTES, or expand
    implausibly (a zip bomb), before reading a single entry."""
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if unpacked > MAX_EXTRACTED_BYTES:
        raise SourceError(
            f"{archive}: would unpack to {unpacked / 1e9:.1f} GB, over the "
            f"{MAX_EXTRACTED_BYTES / 1e9:.0f} GB limit; extract it yourself and set data.source to the folder"
        )
    if unpacked > 10**8 and unpacked > MAX_RATIO * max(packed, 1):
        raise SourceError(
            f"{archive}: {packed / 1e6:.1f} MB would unpack to {unpacked / 1e9:.1f} GB "
            f"(over {MAX_RATIO}x: a zip bomb?); refusing to extract"
        )


def not_a_zip(archive: Path) -> str:
    """What the file is instead, for the error message."""
    if tarfile.is_tarfile(archive):
        return (
            "a tar archive; qdet reads zip archives (the format GTSDB and PennFudan are published in) "
            "or folders: unpack it and set data.source to the folder"
        )
    return "not a readable zip archive (truncated or another format?); qdet reads .zip files and folders"


def safe_extract(archive: Path, target: Path) -> list[str]:
    """Extract a zip into ``target``; refuse entries escaping it and archives that would unpack
    too much; return the top-level names."""
    target = target.resolve()
    if archive.is_file() and not zipfile.is_zipfile(archive):
        raise SourceError(f"{archive}: {not_a_zip(archive)}")
    try:
        with zipfile.ZipFile(archive) as zf:
            check_bounds(archive, zf.infolist())
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
        raise SourceError(f"{archive}: {not_a_zip(archive)}: {exc}") from exc
    except EOFError as exc:
        raise SourceError(f"{archive}: archive ends early (truncated): {exc}") from exc


def copy_folder(src: Path, target: Path) -> None:
    """A local folder source: copied as is (the user's own layout, e.g. VOC)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target)
