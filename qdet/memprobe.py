"""``python -m qdet.memprobe ARTIFACT IMAGE RUNS THREADS``: print the peak RSS (MB) of this
process after loading a TorchScript artifact and running it; one process per variant."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch


def main(argv: list[str]) -> None:
    artifact, image, runs, threads = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    torch.set_num_threads(threads)
    from qdet.data.dataset import load_image

    if artifact.suffix == ".ts":
        from qdet.export import load_artifact

        model, _ = load_artifact(artifact)
    else:  # the eager float model from the train stage
        from qdet.checkpoint import load_checkpoint
        from qdet.config import config_from_dict
        from qdet.models.detector import load_float_detector

        cfg = config_from_dict(load_checkpoint(artifact)["config"])
        model, _ = load_float_detector(artifact, cfg.backbone, cfg.model)
    x = load_image(image)
    with torch.inference_mode():
        for _ in range(runs):
            model([x])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KiB


if __name__ == "__main__":
    main(sys.argv[1:])
