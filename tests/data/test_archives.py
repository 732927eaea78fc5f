import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from qdet.data.archives import SourceError, http_download, safe_extract, verify_md5


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_extract_refuses_path_escape(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"x", "../escape.txt": b"y"})
    with pytest.raises(SourceError, match=r"'\.\./escape\.txt' would be written outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_extract_refuses_absolute_entry(tmp_path):
    archive = _zip(tmp_path / "abs.zip", {"/etc/qdet_evil": b"y"})
    with pytest.raises(SourceError, match="outside"):
        safe_extract(archive, tmp_path / "out")


def test_truncated_archive_is_clear_error(tmp_path):
    archive = _zip(tmp_path / "a.zip", {f"f{i}.bin": bytes(1000) * 50 for i in range(3)})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="a.zip: .*truncated"):
        safe_extract(archive, tmp_path / "out")


def test_wrong_checksum_names_file_and_digests(tmp_path):
    f = tmp_path / "PennFudanPed.zip"
    f.write_bytes(b"not the real archive")
    with pytest.raises(
        SourceError, match=r"PennFudanPed\.zip: wrong checksum: md5 is [0-9a-f]{32}, expected 5aaa"
    ):
        verify_md5(f, "5aaa3dee905cef73325923716e38fc6d")


def test_download_offline_fails_fast_with_advice(tmp_path):
    with pytest.raises(SourceError, match="data.source: synthetic"):
        http_download("http://127.0.0.1:9/FullIJCNN2013.zip", tmp_path / "x.zip", timeout=3)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = bytes(range(256)) * 400

    def do_GET(self):  # noqa: N802
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_download_resumes_partial_file(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "data.zip"
        part = tmp_path / "data.zip.part"
        part.write_bytes(_RangeHandler.payload[:1000])  # an interrupted earlier download
        seen = []
        http_download(
            f"http://127.0.0.1:{server.server_port}/data.zip",
            dest,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert dest.read_bytes() == _RangeHandler.payload
        assert seen[0][0] > 1000 and seen[-1] == (len(_RangeHandler.payload),) * 2
        assert hashlib.md5(dest.read_bytes()).hexdigest() == hashlib.md5(_RangeHandler.payload).hexdigest()
    finally:
        server.shutdown()


def test_a_tar_archive_is_named_as_such(tmp_path):
    import tarfile

    (tmp_path / "gt.txt").write_text("x")
    with tarfile.open(tmp_path / "data.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "gt.txt", arcname="gt.txt")
    with pytest.raises(SourceError, match=r"data\.tar\.gz: a tar archive; qdet reads zip archives"):
        safe_extract(tmp_path / "data.tar.gz", tmp_path / "out")


def test_a_zip_bomb_is_refused_before_extracting(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(300 * 10**6))  # 300 MB of zeros packs to ~0.3 MB
    with pytest.raises(
        SourceError, match=r"bomb\.zip: .* would unpack to 0\.3 GB \(over 200x: a zip bomb\?\)"
    ):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
