"""Run a detector artifact on images, folders or videos and write annotated copies.

Works with a TorchScript file or a ``models:/name@alias`` registry URI; needs no training code.
Unreadable inputs are reported and skipped, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from qdet.data.dataset import load_image
from qdet.export import load_artifact
from qdet.plots import draw_detections

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


@dataclass
class PredictReport:
    images: int = 0
    frames: int = 0
    detections: int = 0
    seconds: float = 0.0  # model time only
    skipped: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return (self.images + self.frames) / self.seconds if self.seconds else 0.0


def resolve_model(model: str) -> Path:
    """A local artifact (.ts file or AOTInductor folder), or the one inside a registered model."""
    if not model.startswith(("models:/", "runs:/")):
        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"{path}: model file not found")
        return path
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    found = sorted([*local.rglob("*.ts"), *(p.parent for p in local.rglob("detector.json"))])
    if not found:
        raise FileNotFoundError(f"{model}: no qdet artifact inside the registered model")
    return found[0]


def expand(sources: list[Path]) -> Iterator[Path]:
    for source in sources:
        if source.is_dir():
            yield from sorted(
                p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        else:
            yield source


class Predictor:
    def __init__(self, model: str, threshold: float) -> None:
        self.module, meta = load_artifact(resolve_model(model))
        self.classes: list[str] = meta.get("classes", [])
        self.threshold = threshold

    def names(self, labels: torch.Tensor) -> list[str]:
        return [self.classes[int(k) - 1] if 0 < int(k) <= len(self.classes) else str(int(k)) for k in labels]

    @torch.inference_mode()
    def annotate(self, image: torch.Tensor, report: PredictReport) -> Image.Image:
        start = time.perf_counter()
        det = self.module([image])[0]
        report.seconds += time.perf_counter() - start
        keep = det["scores"] >= self.threshold
        report.detections += int(keep.sum())
        return draw_detections(
            image, det["boxes"][keep], self.names(det["labels"][keep]), det["scores"][keep]
        )

    def image(self, path: Path, out_dir: Path, report: PredictReport) -> None:
        try:
            tensor = load_image(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            report.skipped.append(f"{path}: cannot read image ({exc})")
            return
        self.annotate(tensor, report).save(out_dir / f"{path.stem}_pred.png")
        report.images += 1

    def video(self, path: Path, out_dir: Path, report: PredictReport) -> None:
        import av
        import numpy as np

        try:
            source = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            report.skipped.append(f"{path}: cannot open video ({exc})")
            return
        with source, av.open(str(out_dir / f"{path.stem}_pred.mp4"), "w") as sink:
            stream_in = source.streams.video[0]
            stream = sink.add_stream("mpeg4", rate=stream_in.average_rate or 25)
            stream.width, stream.height = stream_in.width, stream_in.height
            try:
                for frame in source.decode(stream_in):
                    tensor = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1) / 255.0
                    drawn = self.annotate(tensor.contiguous(), report)
                    sink.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(drawn), format="rgb24")))
                    report.frames += 1
            except av.error.FFmpegError as exc:
                report.skipped.append(f"{path}: video stream broken after {report.frames} frames ({exc})")
            sink.mux(stream.encode(None))

    def run(self, sources: list[Path], out_dir: Path) -> PredictReport:
        out_dir.mkdir(parents=True, exist_ok=True)
        report = PredictReport()
        for path in expand(sources):
            if not path.exists():
                report.skipped.append(f"{path}: no such file")
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                self.video(path, out_dir, report)
            else:
                self.image(path, out_dir, report)
        return report
