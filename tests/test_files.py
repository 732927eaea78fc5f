"""Outputs are whole or absent: a failed write leaves nothing a later stage would take for a result."""

import errno

import pytest

from qdet.core.files import OutputError, files_with_suffix, require_free_space, write_atomically, write_json


def test_a_full_disk_leaves_no_partial_file_and_names_the_path(tmp_path):
    target = tmp_path / "metrics" / "eval.json"

    def half_then_full(partial):
        partial.write_text('{"map50": 0.')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError) as caught:
        write_atomically(target, half_then_full)
    assert (
        str(caught.value)
        == f"{target}: not written: No space left on device; the disk is full: free space and rerun"
    )
    assert list(target.parent.iterdir()) == []


def test_an_old_result_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "summary.json"
    write_json({"map50": 0.8}, target)

    def fails(partial):
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.raises(OutputError, match="read-only"):
        write_atomically(target, fails)
    assert target.read_text() == '{\n "map50": 0.8\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_too_little_free_space_is_refused_before_work(tmp_path):
    require_free_space([tmp_path / "not" / "yet"], 1, "convert")  # the nearest existing folder counts
    with pytest.raises(OutputError, match=r"GB free, convert needs about 1000000000\.0 GB"):
        require_free_space([tmp_path], 10**18, "convert")


def test_a_folder_is_listed_by_suffix_any_case_subfolders_too_by_name(tmp_path):
    for name in ("b.JPG", "a.png", "sub/c.jpg", "notes.txt", "sub/d.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = files_with_suffix(tmp_path, {".jpg", ".png"})
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.png", "b.JPG", "sub/c.jpg"]
