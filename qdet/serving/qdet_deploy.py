"""qdet's int8 detector without torch: numpy, Pillow and ONNX Runtime or OpenVINO.

This file ships in each deploy folder (``model.onnx``, ``openvino/model.xml`` + ``.bin``,
``deploy.json``, ``image_input.py``). From Python::

    from qdet_deploy import Detector
    detector = Detector("deploy", runtime="openvino")  # or "onnxruntime"
    for found in detector.predict("street.jpg", threshold=0.5):
        print(found.label, found.score, found.box)

From the shell: ``python qdet_deploy.py street.jpg [more.jpg ...] --runtime openvino``.

From C++, C# or Java, call the runtime on ``model.onnx`` or ``openvino/model.xml``: one input
``image``, float32, 3 x H x W, RGB in [0, 1] (any H x W: the model resizes and normalises);
outputs ``boxes`` (N x 4 float32, x1 y1 x2 y2 in the input's pixels), ``labels`` (N int64,
label k is ``classes[k - 1]`` of deploy.json) and ``scores`` (N float32, highest first).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

RUNTIMES = ("onnxruntime", "openvino")
META = "deploy.json"


def _image_input():
    """The image reader shipped beside this file (EXIF orientation, bit depths, transparency and
    size checks as qdet reads every image), loaded by path: the folder need not be a package."""
    spec = importlib.util.spec_from_file_location("image_input", Path(__file__).with_name("image_input.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels


class Detector:
    """The detector in ``folder`` on ``runtime`` with ``threads`` (default: every core)."""

    def __init__(self, folder: str | Path, runtime: str = "onnxruntime", threads: int | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not a qdet deploy folder (no {META})")
        self.meta = json.loads(meta_path.read_text())
        self.classes: list[str] = self.meta["classes"]
        self.runtime = runtime
        self._run = self._load(runtime, threads or os.cpu_count() or 1)
        self._images = _image_input()

    def _load(self, runtime: str, threads: int):
        if runtime == "onnxruntime":
            import onnxruntime as ort  # only the runtime the deploy folder is run on need be installed

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(
                str(self.folder / self.meta["onnx"]), options, providers=["CPUExecutionProvider"]
            )
            return lambda image: session.run(None, {"image": image})
        import openvino as ov  # only the runtime the deploy folder is run on need be installed

        config = {**self.meta["openvino_config"], "INFERENCE_NUM_THREADS": str(threads)}
        compiled = ov.Core().compile_model(str(self.folder / self.meta["openvino"]), "CPU", config)
        request = compiled.create_infer_request()
        outputs = [compiled.output(name) for name in ("boxes", "labels", "scores")]

        def run(image: np.ndarray) -> list[np.ndarray]:
            result = request.infer({0: image})
            return [np.array(result[o]) for o in outputs]

        return run

    def read(self, source: str | Path | IO[bytes]) -> np.ndarray:
        """An image file as the model takes it: 3 x H x W float32 RGB in [0, 1], as displayed."""
        return self._images.read_array(str(source) if isinstance(source, Path) else source)

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's own outputs for one 3 x H x W image: boxes, labels, scores."""
        boxes, labels, scores = self._run(np.ascontiguousarray(image, dtype=np.float32))
        return boxes, labels.astype(np.int64), scores

    def predict(self, source: str | Path | IO[bytes] | np.ndarray, threshold: float = 0.5) -> list[Detection]:
        """Detections scoring at least ``threshold`` in an image file (or an array from :meth:`read`)."""
        image = source if isinstance(source, np.ndarray) else self.read(source)
        boxes, labels, scores = self.raw(image)
        return [
            Detection(self.name(int(k)), float(s), tuple(float(v) for v in b))  # type: ignore[arg-type]
            for b, k, s in zip(boxes, labels, scores, strict=True)
            if s >= threshold
        ]

    def name(self, label: int) -> str:
        return self.classes[label - 1] if 0 < label <= len(self.classes) else str(label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="qdet's int8 detector on images, without torch")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    detector = Detector(Path(__file__).parent, args.runtime, args.threads)
    failed = 0
    for path in args.images:
        try:
            found = detector.predict(path, args.threshold)
        except (OSError, ValueError) as error:  # unreadable image: said, counted, the rest go on
            print(f"{path}: skipped ({error})", file=sys.stderr)
            failed += 1
            continue
        shown = "; ".join(f"{d.label} {d.score:.2f} at {', '.join(f'{v:.0f}' for v in d.box)}" for d in found)
        print(f"{path}: {len(found)} found" + (f": {shown}" if found else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
