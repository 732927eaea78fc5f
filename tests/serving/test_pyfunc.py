"""The registered pyfunc model: signature, input example, predict-time params honoured."""

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import torch
from mlflow.exceptions import MlflowException
from PIL import Image

from qdet.registry.champion import Candidate
from qdet.registry.publish import register_variant
from qdet.tracking import default_uri
from tests.helpers import answers, tiny_torchscript


class DirectRun:
    """The part of a StageRun that register_variant uses, without the offline fallback."""

    failed: list[str] = []
    parent_id = None

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)


def _image_b64() -> str:
    torch.manual_seed(3)
    array = (torch.rand(96, 128, 3) * 255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _bomb_b64() -> str:
    """A small PNG whose header claims 144 megapixels."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_image_reader_ships_inside_the_model(registered):
    """Served without qdet, the model reads images with the project's reader (EXIF, 16-bit,
    transparency, bombs): it is copied beside the pyfunc."""
    import numpy as np

    uri, version = registered
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/tiny/{version}"))
    assert (local / "code" / "image_input.py").is_file()
    loaded = mlflow.pyfunc.load_model(f"models:/tiny/{version}")
    deep = io.BytesIO()
    Image.fromarray(np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) * 5).save(deep, format="PNG")
    frame = pd.DataFrame({"image": [base64.b64encode(deep.getvalue()).decode()]})
    assert list(loaded.predict(frame).columns) == [
        "image", "class_name", "label", "score", "x_min", "y_min", "x_max", "y_max"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A tiny float detector registered as version 1 of ``tiny`` in a fresh sqlite store."""
    tmp_path = tmp_path_factory.mktemp("registry")
    artifact = tiny_torchscript(tmp_path / "float.ts", "float")
    store = default_uri(tmp_path)
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("pyfunc-test")
    with mlflow.start_run() as run:
        candidate = Candidate("float", artifact, 0.5, 0.0, 1.0, [0.9, 1.1], 100.0, "g")
        row = {"size_mb": 12.5}
        version, _ = register_variant("tiny", candidate, row, {"dataset": "x"}, DirectRun(run.info.run_id))
    registered = mlflow.MlflowClient().get_model_version("tiny", version)
    assert registered.run_id == run.info.run_id
    assert registered.description.startswith(
        "**float**: the float model"
    )  # the registry page says what it is
    assert (
        "test mAP@.5 0.500 [0.000, 1.000]" in registered.description and "12.5 MB" in registered.description
    )
    assert "torch.jit.load" in registered.description
    assert f"qdet-predict models:/tiny/{version} my_images/" in registered.description
    return store, version


def test_registered_model_has_a_signature_and_honours_its_params(registered):
    uri, version = registered
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(f"models:/tiny/{version}")
    assert {p.name for p in info.signature.params} == {"score_threshold", "max_detections"}
    assert [c.name for c in info.signature.inputs.inputs] == ["path", "image"]
    assert mlflow.MlflowClient().get_model_version("tiny", version).tags["variant"] == "float"

    loaded = mlflow.pyfunc.load_model(f"models:/tiny/{version}")
    frame = pd.DataFrame({"image": [_image_b64()]})
    everything = loaded.predict(frame, params={"score_threshold": 0.0})
    assert (everything["score"] < 0.5).any()  # so the threshold below has something to drop
    kept = loaded.predict(frame, params={"score_threshold": 0.5})
    assert (kept["score"] >= 0.5).all() and len(kept) < len(everything)
    top = loaded.predict(frame, params={"score_threshold": 0.0, "max_detections": 2})
    assert len(top) == 2 and top["score"].tolist() == sorted(everything["score"], reverse=True)[:2]


def test_paths_are_read_only_inside_the_folder_the_operator_named(registered, tmp_path, monkeypatch):
    uri, version = registered
    mlflow.set_tracking_uri(uri)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    image = allowed / "street.png"
    image.write_bytes(base64.b64decode(_image_b64()))
    secret = tmp_path / "secret.png"
    secret.write_bytes(image.read_bytes())
    (allowed / "link.png").symlink_to(secret)
    loaded = mlflow.pyfunc.load_model(f"models:/tiny/{version}", model_config={"image_dir": str(allowed)})
    by_path = loaded.predict({"path": [str(image)]}, params={"score_threshold": 0.0})
    by_name = loaded.predict({"path": ["street.png"]}, params={"score_threshold": 0.0})
    by_bytes = loaded.predict(pd.DataFrame({"image": [_image_b64()]}), params={"score_threshold": 0.0})
    assert (
        len(by_path) > 0
        and by_path["score"].tolist() == by_bytes["score"].tolist() == by_name["score"].tolist()
    )
    for outside in (str(secret), "../secret.png", "link.png", "/etc/passwd"):
        with pytest.raises(
            MlflowException, match="column 'path', row 0: outside the allowed folder"
        ) as caught:
            loaded.predict({"path": [outside]})
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    monkeypatch.delenv("QDET_IMAGE_DIR", raising=False)
    closed = mlflow.pyfunc.load_model(f"models:/tiny/{version}")
    with pytest.raises(MlflowException, match="the 'path' input is off"):
        closed.predict({"path": [str(image)]})
    monkeypatch.setenv("QDET_IMAGE_DIR", str(allowed))
    assert len(mlflow.pyfunc.load_model(f"models:/tiny/{version}").predict({"path": ["street.png"]})) > 0


def test_bad_input_and_params_are_refused_in_one_line(registered):
    uri, version = registered
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"models:/tiny/{version}")
    frame = pd.DataFrame({"image": [_image_b64()]})
    cases = [
        (
            pd.DataFrame({"image": [_image_b64(), "not base64!"]}),
            {},
            "column 'image', row 1: not valid base64",
        ),
        (pd.DataFrame({"image": [base64.b64encode(b"text").decode()]}), {}, "row 0: not a readable image"),
        (pd.DataFrame({"picture": [_image_b64()]}), {}, "expected an 'image' column"),
        (frame, {"score_threshold": 1.5}, r"param score_threshold: must be a number in \[0, 1\], got 1.5"),
        (frame, {"score_threshold": -0.1}, "param score_threshold"),
        (frame, {"max_detections": -5}, "param max_detections: must be a whole number >= 0"),
        (
            pd.DataFrame({"image": [_bomb_b64()]}),
            {},
            r"row 0: 12000x12000 pixels \(144 megapixels\) is above",
        ),
    ]
    for data, params, message in cases:
        with pytest.raises(MlflowException, match=message) as caught:
            loaded.predict(data, params=params)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and "\n" not in caught.value.message


def test_mlflow_models_serve_answers_the_readme_request(registered, tmp_path):
    """The README's curl request, sent to a real ``mlflow models serve`` on localhost."""
    uri, version = registered
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow_bin), "models", "serve", "--env-manager", "local", "-m", f"models:/tiny/{version}"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "SERVING_MODEL_CONFIG": json.dumps({"image_dir": str(tmp_path)}),
            "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ['PATH']}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        answers(f"{url}/ping")  # the request below fails with the reason if it never does
        frame = {"dataframe_split": {"columns": ["image"], "data": [[_image_b64()]]}}
        answer = requests.post(f"{url}/invocations", json=frame, timeout=60)
        assert answer.ok, answer.text[-2000:]
        scores = sorted(r["score"] for r in answer.json()["predictions"])
        middle = scores[len(scores) // 2]
        request = frame | {"params": {"score_threshold": middle, "max_detections": 3}}
        rows = requests.post(f"{url}/invocations", json=request, timeout=60).json()["predictions"]
        assert rows and all(r["score"] >= middle for r in rows) and len(rows) <= 3
        assert set(rows[0]) == {"image", "class_name", "label", "score", "x_min", "y_min", "x_max", "y_max"}
        refused = {
            "outside the allowed folder": {
                "dataframe_split": {"columns": ["path"], "data": [["/etc/passwd"]]}
            },
            "not valid base64": {"dataframe_split": {"columns": ["image"], "data": [["%%%"]]}},
            "param score_threshold": frame | {"params": {"score_threshold": 1.5}},
        }
        for message, request in refused.items():
            answer = requests.post(f"{url}/invocations", json=request, timeout=60)
            assert answer.status_code == 400, (message, answer.status_code, answer.text[-500:])
            body = answer.json()  # MLflow's server puts "Failed to predict data '...'" first
            last = body["message"].splitlines()[-1]
            assert last.startswith("Error: ") and message in last, body["message"][-500:]
            assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_requests_from_many_threads_run_on_the_models_own_thread(registered):
    """A server calls predict from a pool of request threads; every one must reach the model on
    the single thread it owns (an OpenMP team per request thread is what made serving slow)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    uri, version = registered
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"models:/tiny/{version}", model_config={"threads": 1})
    impl = loaded.unwrap_python_model()
    seen, real = set(), impl.model
    impl.model = lambda images: (seen.add(threading.current_thread().name), real(images))[1]
    frame = pd.DataFrame({"image": [_image_b64()]})
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: loaded.predict(frame), range(8)))
    assert seen == {"qdet-detector_0"}
    assert all(a.equals(answers[0]) for a in answers)
    with pytest.raises(MlflowException, match="threads .*must be a whole number >= 1, got 'two'"):
        mlflow.pyfunc.load_model(f"models:/tiny/{version}", model_config={"threads": "two"})


def test_a_model_still_loaded_at_exit_lets_go_of_its_detector(registered, monkeypatch):
    """An AOTInductor package deletes the folder it unpacked into the temp folder only when its
    loader is destroyed; MLflow keeps the model it loaded last past the interpreter's clean-up
    (the register stage left one artifact's folders per run). The model releases its detector at
    exit, through a weak reference (the handler does not keep a model alive)."""
    import atexit
    import weakref

    exits = []
    monkeypatch.setattr(atexit, "register", lambda fn, *args: exits.append((fn, args)))
    uri, version = registered
    mlflow.set_tracking_uri(uri)
    impl = mlflow.pyfunc.load_model(f"models:/tiny/{version}").unwrap_python_model()
    assert len(exits) == 1 and impl.model is not None
    release, args = exits[0]
    assert [type(a) for a in args] == [weakref.ref]  # the handler holds no model alive
    release(*args)
    assert impl.model is None and impl.runner._shutdown
    release(*args)  # a second call (another handler's model, the same one) is harmless
    assert impl.model is None
