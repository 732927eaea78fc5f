"""What a user could run instead of qdet, built from the same float model and the same
calibration images: ONNX Runtime fp32 and int8 (:mod:`qdet.peers.onnx`), OpenVINO fp32, bf16 and
int8 (:mod:`qdet.peers.openvino`), and torch's own bf16 float (AOTInductor under autocast).

``peers.json`` in the peers folder says which peers were built, from which file, and why any
was left out (no bf16 on this CPU, NNCF's error): evaluate and benchmark read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "peers.json"


def part_prefixes() -> tuple[str, ...]:
    """The node-name prefixes of the parts qdet quantizes in the exported ONNX graph (the export
    names nodes by module path: ``roi_heads.box_head`` -> ``/roi_heads/box_head/``): ORT and NNCF
    quantize these and nothing else, as a fair peer must."""
    # the quantization code only when a peer is built: qdet-predict loads peers without it
    from qdet.quant.parts import PARTS

    return tuple("/" + path.replace(".", "/") + "/" for path in PARTS.values())


def write_manifest(out_dir: Path, built: dict[str, Path], skipped: dict[str, str], details: dict) -> None:
    data = {"variants": {k: v.name for k, v in built.items()}, "skipped": skipped, "details": details}
    (out_dir / MANIFEST).write_text(json.dumps(data, indent=1))


def read_manifest(out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / MANIFEST).read_text())


def peer_files(out_dir: Path) -> dict[str, Path]:
    """Every peer the peers stage built, by variant name, and its artifact."""
    return {name: out_dir / rel for name, rel in read_manifest(out_dir)["variants"].items()}


def skipped(out_dir: Path) -> dict[str, str]:
    """The peers left out of this run and why (one line each, for the console and the report)."""
    return read_manifest(out_dir)["skipped"]
