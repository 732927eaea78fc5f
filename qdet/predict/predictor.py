"""Run a detector on images, folders or videos and write annotated copies, a CSV of the
detections and a CSV of per-image latencies.

Works with a TorchScript file, an AOTInductor folder, a deploy folder (ONNX Runtime, OpenVINO)
or a ``models:/name@alias`` registry URI (:mod:`qdet.predict.model`); needs no training code.
One bad input never stops the batch: it is reported, counted and the rest goes on.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from qdet.core.console import console
from qdet.core.errors import QdetError, last_line
from qdet.core.files import OutputError, files_with_suffix, write_atomically
from qdet.core.progress import progress_bar
from qdet.data.dataset import IMAGE_SUFFIXES
from qdet.predict.model import load_model, resolve_model
from qdet.report.plots import draw_detections
from qdet.serving.image_input import ImageReadError, read_image

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
DETECTION_COLUMNS = ["file", "class_name", "label", "score", "x_min", "y_min", "x_max", "y_max"]


@dataclass
class PredictReport:
    images: int = 0
    frames: int = 0
    detections: int = 0
    seconds: float = 0.0  # model time only, after warm-up
    failed: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return (self.images + self.frames) / self.seconds if self.seconds else 0.0


def expand(sources: list[Path]) -> Iterator[Path]:
    for source in sources:
        if source.is_dir():
            yield from files_with_suffix(source, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        else:
            yield source


def output_name(path: Path, root: Path) -> Path:
    """Where an input's annotated copy goes, relative to the output folder: its path below the
    inputs' common folder, with the suffix kept in the name (``a/street.jpg`` ->
    ``a/street.jpg.pred.png``), so no two inputs share an output."""
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return relative.with_name(relative.name + ".pred")


class InputError(QdetError):
    """Inputs that cannot run (missing files, folders without images), one line each."""


def check_inputs(sources: list[Path]) -> list[Path]:
    """Every input file to run, or one line per missing file and per folder holding nothing to
    run: checked before the model loads, so a typo costs no model load and leaves no output."""
    problems, paths = [], []
    for source in sources:
        if not source.exists():
            problems.append(f"{source}: no such file or folder")
            continue
        found = list(expand([source]))
        if source.is_dir() and not found:
            suffixes = " ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            problems.append(f"{source}: no image or video inside (looked for {suffixes})")
        paths.extend(found)
    if problems:
        raise InputError("\n".join(problems))
    return paths


class Predictor:
    def __init__(
        self,
        model: str,
        threshold: float,
        max_pixels: int,
        tracking_uri: str | None = None,
        runtime: str = "torch",
        threads: int = 2,
    ) -> None:
        self.module, meta = load_model(resolve_model(model, tracking_uri, runtime), runtime, threads)
        self.classes: list[str] = meta.get("classes", [])
        self.threshold = threshold
        self.max_pixels = max_pixels
        self.warmup_calls = 0  # until the timing is steady: 0 until the first input
        self.rows: list[list] = []  # one per detection
        self.timings: list[list] = []  # one per image or frame

    def names(self, labels: torch.Tensor) -> list[str]:
        return [self.classes[int(k) - 1] if 0 < int(k) <= len(self.classes) else str(int(k)) for k in labels]

    def warm_up(
        self,
        image: torch.Tensor,
        tolerance: float = 0.1,
        most: int = 20,
        clock: Callable[[], float] = time.perf_counter,
    ) -> int:
        """Call the model on ``image`` until two calls in a row agree within ``tolerance``: the
        first calls pay for lazy initialisation and TorchScript's profiling runs (steady from
        call 3 on these machines), which are not the model's speed. Returns the calls made."""
        previous = None
        for calls in range(1, most + 1):
            start = clock()
            self.module([image])
            elapsed = clock() - start
            if previous is not None and abs(elapsed - previous) <= tolerance * min(elapsed, previous):
                return calls
            previous = elapsed
        return most

    @torch.inference_mode()
    def detect(self, image: torch.Tensor, source: str, report: PredictReport) -> Image.Image:
        if not self.warmup_calls:
            self.warmup_calls = self.warm_up(image)
        start = time.perf_counter()
        det = self.module([image])[0]
        elapsed = time.perf_counter() - start
        report.seconds += elapsed
        report.latencies_ms.append(elapsed * 1e3)
        keep = det["scores"] >= self.threshold
        report.detections += int(keep.sum())
        self.timings.append([source, round(elapsed * 1e3, 2), int(keep.sum())])
        boxes, names, scores = det["boxes"][keep], self.names(det["labels"][keep]), det["scores"][keep]
        for box, name, label, score in zip(
            boxes.tolist(), names, det["labels"][keep].tolist(), scores.tolist(), strict=True
        ):
            self.rows.append([source, name, label, round(score, 4), *(round(v, 1) for v in box)])
        return draw_detections(image, boxes, names, scores)

    def image(self, path: Path, target: Path, report: PredictReport) -> None:
        try:
            tensor = read_image(str(path), self.max_pixels)
        except ImageReadError as exc:
            report.failed.append(f"{path}: cannot read image: {exc}")
            return
        try:
            drawn = self.detect(tensor, str(path), report)
        except RuntimeError as exc:  # e.g. a 1x4000 image the detector cannot resize
            report.failed.append(f"{path}: the detector failed on this image ({last_line(exc)})")
            return
        write_atomically(target.with_name(target.name + ".png"), lambda f: drawn.save(f, format="PNG"))
        report.images += 1

    def video(self, path: Path, target: Path, report: PredictReport, advance) -> None:
        import av  # PyAV only for videos
        import numpy as np  # PyAV only for videos

        try:
            source = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            report.failed.append(f"{path}: cannot open video ({exc})")
            return

        def write(partial: Path) -> None:
            with source, av.open(str(partial), "w", format="mp4") as sink:
                stream_in = source.streams.video[0]
                stream = sink.add_stream("mpeg4", rate=stream_in.average_rate or 25)
                stream.width, stream.height = stream_in.width, stream_in.height
                frames = 0
                try:
                    for frame in source.decode(stream_in):
                        tensor = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1) / 255.0
                        drawn = self.detect(tensor.contiguous(), f"{path}#{frames}", report)
                        sink.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(drawn), format="rgb24")))
                        frames += 1
                        report.frames += 1
                        advance(frames, stream_in.frames or None)
                except (av.error.FFmpegError, RuntimeError) as exc:
                    report.failed.append(f"{path}: video stopped after {frames} frames ({exc})")
                sink.mux(stream.encode(None))

        write_atomically(target.with_name(target.name + ".mp4"), write)

    def run(self, paths: list[Path], out_dir: Path) -> PredictReport:
        """Every input in turn, with a progress bar on a terminal; an input that fails is
        reported and counted, and the CSVs are written whatever happened before."""
        out_dir.mkdir(parents=True, exist_ok=True)
        report = PredictReport()
        root = Path(os.path.commonpath([p.resolve().parent for p in paths])) if paths else Path.cwd()
        with progress_bar(console=console, transient=True) as bar:
            task = bar.add_task("predict", total=len(paths), info="")
            for path in paths:
                target = out_dir / output_name(path, root)
                bar.update(task, info=path.name)
                try:
                    if path.suffix.lower() in VIDEO_SUFFIXES:

                        def advance(done: int, total: int | None, name: str = path.name) -> None:
                            bar.update(task, info=f"{name} frame {done}" + (f"/{total}" if total else ""))

                        self.video(path, target, report, advance)
                    else:
                        self.image(path, target, report)
                except OutputError as exc:  # an output that cannot be written (disk full, permissions)
                    report.failed.append(f"{path}: {exc}")
                bar.advance(task)
        for name, header, rows in (
            ("detections.csv", DETECTION_COLUMNS, self.rows),
            ("latency.csv", ["file", "latency_ms", "detections"], self.timings),
        ):
            try:
                write_atomically(out_dir / name, lambda f, h=header, r=rows: _write_csv(f, [h, *r]))
            except OutputError as exc:
                report.failed.append(str(exc))
        return report


def _write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
