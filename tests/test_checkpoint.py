"""Checkpoints: atomic writes, and the fingerprint that decides whether a rerun may resume."""

import os
import signal
from pathlib import Path

import pytest
import torch

import qdet
from qdet.core import checkpoint
from qdet.core.checkpoint import fingerprint, load_checkpoint, recipe_digest, save_checkpoint


def test_fingerprint_follows_inputs_and_params_but_not_thread_counts(tmp_path):
    data = tmp_path / "processed"
    data.mkdir()
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,4,4\n")
    model = tmp_path / "float.pt"
    model.write_bytes(b"weights v1")
    resolved = {"seed": 0, "train": {"lr": 0.001, "threads": 2, "workers": 0}}

    first = fingerprint(resolved, "seed", "train", inputs=(data, model))
    fewer_threads = {"seed": 0, "train": {"lr": 0.001, "threads": 1, "workers": 2}}
    assert fingerprint(fewer_threads, "seed", "train", inputs=(data, model)) == first

    model.write_bytes(b"weights v2")  # e.g. train reran: QAT must not resume the old run
    assert fingerprint(resolved, "seed", "train", inputs=(data, model)) != first
    model.write_bytes(b"weights v1")
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,5,5\n")
    assert fingerprint(resolved, "seed", "train", inputs=(data, model)) != first
    (data / "train.csv").write_text("a.ppm,10,10,sign,0,0,4,4\n")
    assert fingerprint(resolved, "seed", "train", inputs=(data, model)) == first
    other_lr = {"seed": 0, "train": {"lr": 0.01, "threads": 2, "workers": 0}}
    assert fingerprint(other_lr, "seed", "train", inputs=(data, model)) != first


def test_save_checkpoint_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"epoch": 1}, path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_a_stop_during_a_save_waits_for_the_write_then_stops(tmp_path, monkeypatch):
    """SIGTERM inside torch.save used to surface as torch's "unexpected pos" RuntimeError
    (exit 1 with a traceback) instead of the stop (exit 130, one line)."""
    real_save = torch.save

    def save_then_stop(state, f):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the write
        real_save(state, f)

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(checkpoint.torch, "save", save_then_stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint({"epoch": 3}, tmp_path / "ck.pt")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert load_checkpoint(tmp_path / "ck.pt") == {"epoch": 3}  # the write finished first
    assert list(tmp_path.iterdir()) == [tmp_path / "ck.pt"]


def test_temp_files_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".train.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".qat.pt.abc123.tmp"  # another file's temp: not ours to remove
    other.write_bytes(b"x")
    save_checkpoint({"epoch": 1}, tmp_path / "train.pt")
    assert not stale.exists() and other.exists()
    assert load_checkpoint(tmp_path / "train.pt") == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".qat.pt.abc123.tmp", "train.pt"]


RECIPE = {
    "dataset": "gtsdb",
    "backbone": "resnet18",
    "seed": 0,
    "data": {"source": "synthetic", "seed": 0},
    "model": {"fpn": True},
    "train": {"epochs": 3, "lr": 0.001, "threads": 2, "workers": 0},
    "quant": {"engine": "pt2e"},
}


def _with(section: str, key: str, value) -> dict:
    return {**RECIPE, section: {**RECIPE[section], key: value}}


def test_recipe_ignores_seed_threads_and_later_stages_but_not_training_settings_or_data():
    digest = recipe_digest(RECIPE)
    assert recipe_digest({**RECIPE, "seed": 2}) == digest
    assert recipe_digest(_with("train", "threads", 8)) == digest
    assert recipe_digest(_with("quant", "engine", "fx")) == digest
    assert recipe_digest(_with("train", "lr", 0.002)) != digest
    assert recipe_digest(_with("model", "fpn", False)) != digest
    assert recipe_digest(_with("data", "seed", 1)) != digest  # other data: another recipe
    assert recipe_digest({**RECIPE, "backbone": "squeezenet1_1"}) != digest


def test_fingerprint_covers_the_whole_package(monkeypatch, tmp_path):
    """A change anywhere in qdet (the training loop, not just qdet/core) must stop a resume."""
    digested = []
    monkeypatch.setattr(checkpoint, "content_digest", lambda *paths: digested.extend(paths) or "d")
    stage = tmp_path / "train.py"
    stage.write_text("")
    fingerprint({"seed": 0}, "seed", stage=stage)
    package = Path(qdet.__file__).parent
    assert package in digested and stage in digested
