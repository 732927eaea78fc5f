"""``python -m qdet.measure.memprobe VARIANT ARTIFACT IMAGE RUNS THREADS``: print two numbers, the
peak RSS (MB) of this process after loading a model and running it, and the peak before loading it (imports
only). One fresh process per variant: a process's high-water mark cannot be reset.

VmHWM from /proc is used, not ``getrusage``'s ru_maxrss, which Linux carries over from the
parent across fork + exec and so would report the benchmark process's own peak.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError("/proc/self/status has no VmHWM line (not Linux?)")


def probe_peak_rss(name: str, artifact: Path, image: Path, runs: int, threads: int) -> tuple[float, float]:
    """(peak RSS, peak RSS before loading the model) of a fresh process that loads ``artifact``
    and runs it ``runs`` times; the difference is what the model itself costs."""
    command = [
        sys.executable,
        "-m",
        "qdet.measure.memprobe",
        name,
        str(artifact),
        str(image),
        str(runs),
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe of {artifact} failed: {done.stderr.strip()[-500:]}")
    peak, baseline = (float(v) for v in done.stdout.split()[-2:])
    return peak, baseline


def main(argv: list[str]) -> None:
    name, artifact, image = argv[0], Path(argv[1]), Path(argv[2])
    runs, threads = int(argv[3]), int(argv[4])
    torch.set_num_threads(threads)
    # qdet's own code loads here, after the thread count and before the baseline: the probe's
    # baseline is what every loader needs, not what this module's header would pull in
    from qdet.data.dataset import load_image
    from qdet.models import detector  # noqa: F401  (imported before the baseline, as every loader needs it)
    from qdet.variants.artifacts import load_variant  # after the baseline's imports, as above

    baseline = peak_rss_mb()
    model = load_variant(name, artifact, threads)
    x = load_image(image)
    with torch.inference_mode():
        for _ in range(runs):
            model([x])
    print(f"{peak_rss_mb():.1f} {baseline:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
