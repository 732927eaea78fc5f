"""MLflow pyfunc model around a qdet artifact (TorchScript file or AOTInductor folder), logged as
"models from code".

MLflow copies this file into the model and runs it at load time, so it must not import qdet:
only torch, torchvision, numpy, pandas, PIL and mlflow. No Python class is pickled.

Input: a DataFrame with an ``image`` column (encoded image bytes or base64 strings: what a
served request carries) or a ``path`` column (image files), a list of paths, or one HxWx3 uint8
array. Output: one row per detection (image index, class name, label, score, box in pixel
edges). Params at predict time: ``score_threshold`` in [0, 1] (drop detections below it) and
``max_detections`` >= 0 (per image, best first; 0 = all).

Threads: every request is decoded and run on one thread of the model's own, whatever thread it
arrives on. A server (``mlflow models serve``) calls ``predict`` from a pool of request threads,
and each thread that enters an OpenMP region (a kernel, or a tensor op while decoding) gets a
team of its own: with many request threads the model's kernels ran beside dozens of teams
spinning on two cores. Requests queue for that thread; more throughput comes from more worker
processes (``--workers N``), each with ``threads`` torch threads (model config ``threads``, or
the ``QDET_THREADS`` environment variable; default: torch's, one per core).

Files: a request must not make the model read what its operator did not allow. The ``path``
input is off unless the operator names a folder, ``image_dir`` in the model config
(``mlflow.pyfunc.load_model(uri, model_config={"image_dir": "/data"})``; for ``mlflow models
serve``: ``SERVING_MODEL_CONFIG='{"image_dir": "/data"}'``) or the ``QDET_IMAGE_DIR`` environment
variable; then only files inside it are read (links resolved first). Bad input is refused with
MLflow's ``INVALID_PARAMETER_VALUE``: one line naming the column, row or param (HTTP 400 when
served).
"""

import atexit
import base64
import binascii
import concurrent.futures
import importlib.util
import io
import json
import os
import weakref
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
import torchvision  # noqa: F401  (registers torchvision ops for TorchScript)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


def _image_input():
    """The image reader: shipped with the model (log_model ``code_paths``, on sys.path when it
    loads); while MLflow checks this file at logging time, the one beside it in qdet/serving."""
    try:
        import image_input  # shipped beside this file in the model's code/; found at load
    except ModuleNotFoundError:
        beside = Path(__file__).with_name("image_input.py")
        spec = importlib.util.spec_from_file_location("image_input", beside)
        image_input = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(image_input)
    return image_input


_reader = _image_input()
ImageReadError, read_image = _reader.ImageReadError, _reader.read_image

COLUMNS = ["image", "class_name", "label", "score", "x_min", "y_min", "x_max", "y_max"]


IMAGE_DIR_ENV = "QDET_IMAGE_DIR"
THREADS_ENV = "QDET_THREADS"


def _refuse(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _open(source, where: str) -> torch.Tensor:
    try:
        return read_image(source)
    except ImageReadError as error:
        raise _refuse(f"{where}: {error}") from None


def _allowed_path(value, row: int, image_dir: str | None) -> Path:
    """The file a ``path`` cell names, if it lies inside the operator's folder."""
    if not image_dir:
        raise _refuse(
            "the 'path' input is off: this model reads no files unless its operator names a folder "
            f"(model_config image_dir, or {IMAGE_DIR_ENV}); send the image itself, base64-encoded, "
            "in an 'image' column"
        )
    if not isinstance(value, str) or not value:
        raise _refuse(f"column 'path', row {row}: expected a file path, got {type(value).__name__}")
    root = Path(image_dir).resolve()
    path = (root / value).resolve()  # an absolute value replaces root; links are followed first
    if not path.is_relative_to(root):
        raise _refuse(f"column 'path', row {row}: outside the allowed folder {root}")
    return path


def _images(model_input, image_dir: str | None) -> list[torch.Tensor]:
    if isinstance(model_input, np.ndarray):
        if model_input.ndim != 3 or model_input.shape[2] != 3:
            raise _refuse(f"array input: expected HxWx3 uint8, got shape {list(model_input.shape)}")
        array = np.asarray(model_input, dtype=np.float32) / 255.0
        return [torch.from_numpy(array).permute(2, 0, 1).contiguous()]
    if isinstance(model_input, str):
        model_input = [model_input]
    if isinstance(model_input, list):
        model_input = pd.DataFrame({"path": model_input})
    if "path" in model_input.columns and "image" not in model_input.columns:
        cells = model_input["path"]  # {"path": [a, b]} arrives as one cell holding the list
        paths = [p for cell in cells for p in (cell if isinstance(cell, (list, np.ndarray)) else [cell])]
        files = [_allowed_path(p, row, image_dir) for row, p in enumerate(paths)]
        return [_open(f, f"column 'path', row {row}") for row, f in enumerate(files)]
    if "image" not in model_input.columns:  # e.g. a bare list, whose column MLflow drops
        raise _refuse(
            "expected an 'image' column (base64-encoded image files) or a 'path' column, got "
            f"columns {list(model_input.columns)}: predict(pd.DataFrame({{'image': [b64]}}))"
        )
    out = []
    for row, value in enumerate(model_input["image"]):
        where = f"column 'image', row {row}"
        if isinstance(value, str):
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _refuse(f"{where}: not valid base64") from None
        elif isinstance(value, bytes | bytearray):
            raw = bytes(value)
        else:
            raise _refuse(f"{where}: expected a base64 string, got {type(value).__name__}")
        out.append(_open(io.BytesIO(raw), where))
    return out


def _params(params: dict[str, Any], default_threshold: float) -> tuple[float, int]:
    """(score_threshold, max_detections), each checked against its range."""
    threshold = params.get("score_threshold")
    threshold = default_threshold if threshold is None else threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise _refuse(f"param score_threshold: must be a number in [0, 1], got {threshold!r}")
    keep = params.get("max_detections") or 0
    if isinstance(keep, bool) or not isinstance(keep, int | np.integer) or keep < 0:
        raise _refuse(f"param max_detections: must be a whole number >= 0 (0 = all), got {keep!r}")
    return float(threshold), int(keep)


def _load(path: Path) -> tuple[object, list[str]]:
    """A TorchScript file (FX engine) or an AOTInductor folder (PT2E engine, loaded by the
    ``aot_detector.py`` inside it: torch + torchvision only)."""
    if path.is_dir():
        spec = importlib.util.spec_from_file_location("aot_detector", path / "aot_detector.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        detector = module.load(path)
        return detector, detector.classes
    files = {"qdet.json": ""}  # qdet.serving.TORCHSCRIPT_META: this file runs without qdet
    model = torch.jit.load(str(path), map_location="cpu", _extra_files=files).eval()
    return model, json.loads(files["qdet.json"] or "{}").get("classes", [])


def _threads(config: dict) -> int | None:
    """Torch threads the operator asked for (model config, then environment), None for torch's."""
    value = config.get("threads") or os.environ.get(THREADS_ENV)
    if value in (None, ""):
        return None
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1:
        raise _refuse(f"threads (model config or {THREADS_ENV}): must be a whole number >= 1, got {value!r}")
    return threads


def _release(model_ref: weakref.ref) -> None:
    """At exit, drop the detector of a model still loaded. An AOTInductor package removes the
    folder it unpacked into the temp folder only when its loader is destroyed, and MLflow holds
    the model it loaded last (models from code) past the interpreter's own clean-up: each
    register stage left one artifact's folders behind. (A server stopped by SIGTERM runs no exit
    handler: uvicorn re-raises the signal after its shutdown.)"""
    model = model_ref()
    if model is not None:
        model.runner.shutdown(wait=True)
        model.model = None


class TorchScriptDetector(PythonModel):
    def load_context(self, context) -> None:
        config = context.model_config or {}
        self.threshold = float(config.get("score_threshold", 0.0))
        self.image_dir = config.get("image_dir") or os.environ.get(IMAGE_DIR_ENV)
        threads = _threads(config)
        self.runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="qdet-detector")
        self.runner.submit(self._start, Path(context.artifacts["detector"]), threads).result()
        atexit.register(_release, weakref.ref(self))

    def _start(self, path: Path, threads: int | None) -> None:
        """On the detector's thread: set its threads, load, and run once (the first call pays
        for allocations a request should not wait for)."""
        if threads:
            torch.set_num_threads(threads)
        self.model, self.classes = _load(path)
        with torch.inference_mode():
            self.model([torch.zeros(3, 64, 64)])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        threshold, keep = _params(params or {}, self.threshold)
        return self.runner.submit(self._predict, model_input, threshold, keep).result()

    @torch.inference_mode()
    def _predict(self, model_input: pd.DataFrame, threshold: float, keep: int) -> pd.DataFrame:
        """On the detector's thread: decode, detect, one row per detection."""
        rows = []
        for i, image in enumerate(_images(model_input, self.image_dir)):
            det = self.model([image])[0]
            found = [
                (score, box, label)
                for box, label, score in zip(
                    det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist(), strict=True
                )
                if score >= threshold
            ]
            found.sort(key=lambda d: -d[0])
            for score, box, label in found[:keep] if keep else found:
                name = self.classes[label - 1] if 0 < label <= len(self.classes) else str(label)
                rows.append([i, name, label, score, *box])
        return pd.DataFrame(rows, columns=COLUMNS)


mlflow.models.set_model(TorchScriptDetector())
