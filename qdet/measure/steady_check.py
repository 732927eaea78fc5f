"""An independent check of the benchmark's ratios, in a process that cannot import qdet.

Run as a file, not a module (``python qdet/measure/steady_check.py``): importing ``qdet`` raises
here, so every model loads the way a user without qdet loads it: a compiled artifact folder by
its own ``aot_detector.py``, an OpenVINO peer by ``openvino`` from its spec's model and config,
an ONNX peer by ``onnxruntime`` with its default settings and the threads given. Each model lives
in a process of its own and runs alone, back to back (steady state as a deployment runs it): the
processes take turns, one block of calls each per round, in an order rotated every round, so a
drift of the machine hits every model alike. The ratios of the medians are compared with
``metrics/benchmark.json``'s::

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
    import numpy as np  # each runtime loads only when a model of its kind is timed
    import torch  # each runtime loads only when a model of its kind is timed

    torch.set_num_threads(threads)
    if path.is_dir():  # an AOTInductor folder: its own loader
        spec = importlib.util.spec_from_file_location("aot_detector", path / "aot_detector.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        detector = module.load(path)
        return lambda image: detector([image])
    if path.suffix == ".json":  # an OpenVINO peer: its model compiled with its recorded config
        import openvino as ov  # each runtime loads only when a model of its kind is timed

        peer = json.loads(path.read_text())
        core = ov.Core()
        config = {**peer["config"], "INFERENCE_NUM_THREADS": str(threads)}
        # the spec names its model relative to its own folder (a deploy row's: openvino/model.xml)
        request = core.compile_model(core.read_model(str(path.parent / peer["model"])), "CPU", config)
        request = request.create_infer_request()
        return lambda image: request.infer({0: image.numpy()})
    if path.suffix == ".onnx":
        import onnxruntime as ort  # each runtime loads only when a model of its kind is timed

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda image: session.run(None, {"image": np.ascontiguousarray(image.numpy())})
    raise ValueError(f"{path}: not an artifact folder, an OpenVINO spec or an ONNX file")


def child(args: argparse.Namespace) -> None:
    """Load one model, say ``ready``, then for each line ``N`` on standard input run one untimed
    call and ``N`` timed ones, back to back, and print their seconds as a JSON list."""
    import numpy as np  # each runtime loads only when a model of its kind is timed
    import torch  # each runtime loads only when a model of its kind is timed
    from PIL import Image  # each runtime loads only when a model of its kind is timed

    run = loader(Path(args.model), args.threads)
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in args.images]
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    with torch.inference_mode():
        for i in range(3):
            run(tensors[i % len(tensors)])
        print("ready", flush=True)
        done = 0
        for line in sys.stdin:
            times = []
            run(tensors[done % len(tensors)])
            for _ in range(int(line)):
                start = time.perf_counter()
                run(tensors[done % len(tensors)])
                times.append(time.perf_counter() - start)
                done += 1
            print(json.dumps(times), flush=True)


def time_in_turns(models: dict[str, Path], paths: list[str], threads: int, rounds: int, block: int) -> dict:
    """Per model, the seconds of its timed calls (see :func:`child`), the processes taking turns."""
    command = [sys.executable, __file__, "--child", "--threads", str(threads)]
    procs = {
        name: subprocess.Popen(
            [*command, "--model", str(path), *paths], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for name, path in models.items()
    }
    try:
        for name, proc in procs.items():
            if proc.stdout.readline().strip() != "ready":
                sys.exit(f"{name}: its process did not load the model (see the error above)")
        names, times = list(procs), {name: [] for name in procs}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                procs[name].stdin.write(f"{block}\n")
                procs[name].stdin.flush()
                times[name] += json.loads(procs[name].stdout.readline())
        return times
    finally:  # standard input closed: each child ends on its own and its loaders clean up
        for proc in procs.values():  # (a killed AOTInductor loader leaves its folder in /tmp)
            proc.stdin.close()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def files(export: Path, peers: Path) -> dict[str, Path]:
    """Every timed variant with a file that loads without qdet (float eager needs qdet: left out):
    convert's variants, the OpenVINO and ONNX Runtime peers, and the peers' compiled folders
    (torch bf16, often the benchmark's best float)."""
    manifest = json.loads((export / "variants.json").read_text())
    out = {name: export / rel for name, rel in manifest["variants"].items()}
    out |= {path.parent.name: path.parent for path in sorted(peers.glob("*/aot_detector.py"))}
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
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--block", type=int, default=5, help="timed calls per turn")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        args.images = rest
        return child(args)
    paths = [str(p) for p in images(args.processed, args.images)]
    times = time_in_turns(files(args.export, args.peers), paths, args.threads, args.rounds, args.block)
    medians = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    for name, ms in sorted(medians.items(), key=lambda item: item[1]):
        print(f"{name}: p50 {ms:.1f} ms", flush=True)
    report: dict[str, object] = {"threads": args.threads, "rounds": args.rounds, "block": args.block}
    report["p50_ms"] = medians
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
