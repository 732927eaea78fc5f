"""Throughput rows: which settings each runtime gets, and real workers started together."""

import os
from pathlib import Path

import pytest
from PIL import Image

from qdet.measure.streams import CALLS, SYNC, settings, splits, throughput, throughput_lines
from tests.helpers import tiny_torchscript


def test_every_split_of_the_threads_is_tried_and_openvino_gets_its_throughput_hint():
    assert splits(2) == [(1, 2), (2, 1)] and splits(4) == [(1, 4), (2, 2), (4, 1)] and splits(1) == [(1, 1)]
    assert settings("openvino", 2) == [(SYNC, 1, 2)]
    assert settings("onnx", 2) == [(CALLS, 1, 2), (CALLS, 2, 1)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streams")
    artifact = tiny_torchscript(tmp / "float.ts", "float_ts")
    image = tmp / "00000.png"
    Image.new("RGB", (128, 96), (90, 120, 150)).save(image)
    return artifact, image


def test_workers_start_together_and_the_best_setting_is_kept(tiny):
    artifact, image = tiny
    row = throughput("float_ts", "artifact", artifact, [image], 2, 0.5)
    assert set(row["tried"]) == {"1 process x 2 threads", "2 processes x 1 thread"}
    assert all(rate > 0 for rate in row["tried"].values())
    assert row["img_per_s"] == max(row["tried"].values()) and row["tried"][row["setting"]] == row["img_per_s"]
    assert throughput_lines({"float_ts": row})[0].startswith(
        f"throughput float_ts: {row['img_per_s']:.1f} img/s"
    )


def test_one_set_of_workers_loads_once_and_runs_every_setting(tiny, monkeypatch):
    """Two processes serve both splits of two threads: 1 x 2 on the first, then 2 x 1 on both
    (a launch per setting spent most of the rows' time starting, importing and loading)."""
    from qdet.measure import streams

    launched = []
    real = streams.start_worker

    def start(*args):
        launched.append(args)
        return real(*args)

    monkeypatch.setattr(streams, "start_worker", start)
    artifact, image = tiny
    row = throughput("float_ts", "artifact", artifact, [image], 2, 0.3)
    assert len(launched) == 2 and all(args[4] == [2, 1] for args in launched)
    assert set(row["tried"]) == {"1 process x 2 threads", "2 processes x 1 thread"}


def test_workers_fork_from_a_server_that_imported_torch_once(tiny):
    """A worker starts without importing torch again: it forks from the server process."""
    from qdet.measure import streams

    artifact, image = tiny
    process, conn = streams.start_worker("float_ts", artifact, [image], CALLS, [1], 0.1)
    try:
        # forked from a process that has run OpenMP (this one), a worker would hang here
        assert conn.poll(120) and conn.recv() == "loaded"
        assert process.pid != os.getpid() and _parent(process.pid) != os.getpid()  # the server's child
    finally:
        conn.send(None)
        process.join(30)
    assert process.exitcode == 0


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_worker_that_cannot_load_its_model_is_one_error_not_a_hang(tiny, tmp_path):
    _, image = tiny
    broken = tmp_path / "broken.ts"
    broken.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="throughput worker for float_ts failed: .*broken.ts"):
        throughput("float_ts", "artifact", broken, [image], 2, 0.5)


def test_no_worker_outlives_a_failed_one(tiny, tmp_path, monkeypatch):
    """The first worker's failure ends the others at once (here a second "worker" that would
    sleep for a minute)."""
    import time

    from qdet.measure import streams

    started = []
    real = streams.start_worker

    def start(*args):
        if not started:
            started.append(real(*args))
        else:
            here, there = streams.FORKSERVER.Pipe()
            sleeper = streams.FORKSERVER.Process(target=time.sleep, args=(60,), daemon=True)
            sleeper.start()
            started.append((sleeper, here))
        return started[-1]

    monkeypatch.setattr(streams, "start_worker", start)
    _, image = tiny
    broken = tmp_path / "broken.ts"
    broken.write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="throughput worker for float_ts failed"):
        throughput("float_ts", "artifact", broken, [image], 2, 0.5)
    assert len(started) == 2 and all(process.exitcode is not None for process, _ in started)


def test_rows_are_qdets_int8_its_deploy_rows_the_int8_peers_and_the_best_float(monkeypatch):
    from qdet.measure import streams

    monkeypatch.setattr(streams, "throughput", lambda name, how, *rest: {"how": how})
    names = [
        "float_eager",
        "ptq",
        "qat",
        "ptq_onnx",
        "ptq_openvino",
        "qat_onnx",
        "qat_openvino",
        "ov_int8",
        "ov_bf16",
    ]
    files = {name: Path(name) for name in names}
    rows = streams.throughput_rows(files, {"best_float": "ov_bf16"}, [], 2, 3.0)
    assert list(rows) == names[1:]  # all but float eager: the int8 ones, their deploy rows, the best float
    assert rows["qat_openvino"] == {"how": "openvino"}
    assert streams.throughput_rows(files, {"best_float": "ov_bf16"}, [], 2, 0.0) == {}
