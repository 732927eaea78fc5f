"""MLflow pyfunc model around a qdet artifact (TorchScript file or AOTInductor folder), logged as
"models from code".

MLflow copies this file into the model and runs it at load time, so it must not import qdet:
only torch, torchvision, numpy, pandas, PIL and mlflow. No Python class is pickled.

Input: a DataFrame with a ``path`` column (image files) or an ``image`` column (encoded image
bytes or base64 strings), a list of paths, or one HxWx3 uint8 array. Output: one row per
detection (image index, class name, label, score, box in pixel edges). Params at predict time:
``score_threshold`` (drop detections below it) and ``max_detections`` (per image, best first).
"""

import base64
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
import torchvision  # noqa: F401  (registers torchvision ops for TorchScript)
from mlflow.pyfunc import PythonModel
from PIL import Image

COLUMNS = ["image", "class_name", "label", "score", "x_min", "y_min", "x_max", "y_max"]


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _images(model_input) -> list[torch.Tensor]:
    if isinstance(model_input, np.ndarray):
        return [_to_tensor(Image.fromarray(model_input.astype(np.uint8)))]
    if isinstance(model_input, str):
        model_input = [model_input]
    if isinstance(model_input, list):
        model_input = pd.DataFrame({"path": model_input})
    if "path" in model_input.columns:
        cells = model_input["path"]  # {"path": [a, b]} arrives as one cell holding the list
        paths = [p for cell in cells for p in (cell if isinstance(cell, (list, np.ndarray)) else [cell])]
        return [_to_tensor(Image.open(p)) for p in paths]
    if "image" not in model_input.columns:  # e.g. a bare list, whose column MLflow drops
        raise ValueError(
            "expected a 'path' column (image files) or an 'image' column (base64-encoded image "
            f"bytes), got columns {list(model_input.columns)}: "
            "predict({'path': ['street.jpg']}) or predict(pd.DataFrame({'image': [b64]}))"
        )
    out = []
    for value in model_input["image"]:
        raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
        out.append(_to_tensor(Image.open(io.BytesIO(raw))))
    return out


def _load(path: Path) -> tuple[object, list[str]]:
    """A TorchScript file (FX engine) or an AOTInductor folder (PT2E engine, loaded by the
    ``aot_detector.py`` inside it: torch + torchvision only)."""
    if path.is_dir():
        spec = importlib.util.spec_from_file_location("aot_detector", path / "aot_detector.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        detector = module.load(path)
        return detector, detector.classes
    files = {"qdet.json": ""}
    model = torch.jit.load(str(path), map_location="cpu", _extra_files=files).eval()
    return model, json.loads(files["qdet.json"] or "{}").get("classes", [])


class TorchScriptDetector(PythonModel):
    def load_context(self, context) -> None:
        self.model, self.classes = _load(Path(context.artifacts["detector"]))
        self.threshold = float((context.model_config or {}).get("score_threshold", 0.0))

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        threshold = float(params.get("score_threshold", self.threshold))
        keep = int(params.get("max_detections", 0) or 0)  # 0: all the detector returns
        rows = []
        with torch.inference_mode():
            for i, image in enumerate(_images(model_input)):
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
