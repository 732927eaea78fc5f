"""What a registered model takes and returns, as MLflow shows and checks it: its signature and
the input example logged beside it."""

from __future__ import annotations

import base64
import io

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image


def signature():
    """What the model takes and returns, shown on its registry page and checked by MLflow: a
    ``path`` or an ``image`` (base64-encoded file) column in, one row per detection out, and the
    predict-time params ``score_threshold`` and ``max_detections`` (0 = all)."""
    outputs = [("image", "long"), ("class_name", "string"), ("label", "long"), ("score", "double")]
    outputs += [(name, "double") for name in ("x_min", "y_min", "x_max", "y_max")]
    return ModelSignature(
        inputs=Schema(
            [ColSpec("string", "path", required=False), ColSpec("string", "image", required=False)]
        ),
        outputs=Schema([ColSpec(dtype, name) for name, dtype in outputs]),
        params=ParamSchema(
            [ParamSpec("score_threshold", "double", 0.0), ParamSpec("max_detections", "long", 0)]
        ),
    )


def input_example():
    """One small image, base64-encoded: what a request to ``mlflow models serve`` carries."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 120, 120)).save(buffer, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()]})
