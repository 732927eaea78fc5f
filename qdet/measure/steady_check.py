"""An independent check of the benchmark's ratios, in a process that cannot import qdet.

Run as a file, not a module (``python qdet/measure/steady_check.py``): importing ``qdet`` raises
here, so every model loads the way a user without qdet loads it: a compiled artifact folder by
its own ``aot_detector.py``, an OpenVINO peer by ``openvino`` from its spec's model and config,
an ONNX peer by ``onnxruntime`` with its default settings and the threads given. Each model runs
alone, back to back, in a process of its own (steady state as a deployment runs it); the ratios
of its median to the others' are compared with ``metrics/benchmark.json``'s::

    python qdet/measure/steady_check.py models/export models/peers data/processed \\
        --bench metrics/benchmark.json --out reports/steady_check.json
"""

from __future__ import annotations

import argparse
import csv
import importlib.abc
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


class _NoQdet(importlib.abc.MetaPathFinder):
    """Refuses qdet: what this script measures must not depend on it."""

    def find_spec(self, name, path=None, target=None):
        if name == "qdet" or name.startswith("qdet."):
            raise ImportError(f"steady_check runs without qdet: import of {name} refused")
        return None


sys.meta_path.insert(0, _NoQdet())

TOLERANCE = 0.05  # the bar: the benchmark's ratios within 5%
RATIOS = ("best_float", "best_int8_peer")


def images(processed: Path, count: int) -> list[Path]:
    with (processed / "test.csv").open(newline="") as f:
        names = list(dict.fromkeys(row["file_name"] for row in csv.DictReader(f)))
    return [processed / "images" / name for name in names[:count]]


def loader(path: Path, threads: int):
    """A callable on one CxHxW float tensor, loaded without qdet."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    if path.is_dir():  # an AOTInductor folder: its own loader
        spec = importlib.util.spec_from_file_location("aot_detector", path / "aot_detector.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        detector = module.load(path)
        return lambda image: detector([image])
    if path.suffix == ".json":  # an OpenVINO peer: its model compiled with its recorded config
        import openvino as ov

        peer = json.loads(path.read_text())
        core = ov.Core()
        config = {**peer["config"], "INFERENCE_NUM_THREADS": str(threads)}
        request = core.compile_model(core.read_model(str(path.with_name(peer["model"]))), "CPU", config)
        request = request.create_infer_request()
        return lambda image: request.infer({0: image.numpy()})
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda image: session.run(None, {"image": np.ascontiguousarray(image.numpy())})
    raise ValueError(f"{path}: not an artifact folder, an OpenVINO spec or an ONNX file")


def time_alone(path: Path, paths: list[Path], threads: int, calls: int) -> list[float]:
    """Seconds of ``calls`` back-to-back calls after 5 untimed ones, in this process."""
    import torch
    from torchvision.io import read_image

    run = loader(path, threads)
    tensors = [read_image(str(p)).float() / 255 for p in paths]
    times = []
    with torch.inference_mode():
        for i in range(5 + calls):
            start = time.perf_counter()
            run(tensors[i % len(tensors)])
            if i >= 5:
                times.append(time.perf_counter() - start)
    return times


def child(args: argparse.Namespace) -> None:
    times = time_alone(Path(args.model), [Path(p) for p in args.images], args.threads, args.calls)
    print(json.dumps(times))


def files(export: Path, peers: Path) -> dict[str, Path]:
    """Every timed variant with a file that loads without qdet (float eager needs qdet: left out)."""
    manifest = json.loads((export / "variants.json").read_text())
    out = {name: export / rel for name, rel in manifest["variants"].items()}
    for path in sorted(peers.glob("*.json")):
        if json.loads(path.read_text()).get("runtime") == "openvino":
            out[path.stem] = path
    out |= {path.stem: path for path in sorted(peers.glob("ort_*.onnx"))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("export", type=Path, nargs="?")
    parser.add_argument("peers", type=Path, nargs="?")
    parser.add_argument("processed", type=Path, nargs="?")
    parser.add_argument("--bench", type=Path, help="metrics/benchmark.json to compare with")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        args.images = rest
        return child(args)
    paths = [str(p) for p in images(args.processed, args.images)]
    medians = {}
    for name, path in files(args.export, args.peers).items():
        command = [sys.executable, __file__, "--child", "--model", str(path), "--threads", str(args.threads)]
        done = subprocess.run([*command, "--calls", str(args.calls), *paths], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name}: {done.stderr.strip()[-600:]}")
        medians[name] = statistics.median(json.loads(done.stdout.strip().splitlines()[-1])) * 1e3
        print(f"{name}: p50 {medians[name]:.1f} ms", flush=True)
    report: dict[str, object] = {"threads": args.threads, "calls": args.calls, "p50_ms": medians}
    if args.bench:
        report["agreement"] = agreement(json.loads(args.bench.read_text()), medians)
        for name, row in report["agreement"].items():
            print(
                f"{name}: x{row['independent']:.3f} here, x{row['benchmark']:.3f} in the benchmark "
                f"({row['difference']:+.1%}): {'within' if row['within'] else 'outside'} {TOLERANCE:.0%}"
            )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


def agreement(bench: dict, medians: dict[str, float]) -> dict[str, dict]:
    """Each of qdet's int8 rows' (those with a size ratio) speedup over the benchmark's best
    float and best int8 peer, here against the benchmark's, and whether they agree within
    :data:`TOLERANCE`."""
    out = {}
    rows = bench["variants"]
    for name in (n for n, row in rows.items() if "size_ratio" in row):
        for key in RATIOS:
            other = bench.get(key)
            if name not in medians or other not in medians or f"speedup_vs_{key}" not in rows.get(name, {}):
                continue
            independent = medians[other] / medians[name]
            benchmark = rows[name][f"speedup_vs_{key}"]
            difference = benchmark / independent - 1
            out[f"{name} vs {other}"] = {
                "independent": independent,
                "benchmark": benchmark,
                "difference": difference,
                "within": abs(difference) <= TOLERANCE,
            }
    return out


if __name__ == "__main__":
    main()
