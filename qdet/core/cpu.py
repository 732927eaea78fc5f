"""What this CPU is and can do, read from /proc/cpuinfo in one place: the machine a result was
measured on (model, family, flags, clock), whether it computes bf16 natively (the bf16 peers and
``quant.float_dtype: auto`` ask), and its widest int8 instructions (the benchmark's limit)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # flags of CPUs that compute bf16 natively


def cpu_info(path: Path = CPUINFO) -> dict[str, str]:
    """The first processor's entries (``model name``, ``cpu family``, ``cpu MHz``, ``flags``);
    empty where there is no such file (not Linux)."""
    info: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def cpu_flags(path: Path = CPUINFO) -> set[str]:
    return set(cpu_info(path).get("flags", "").split())


def bf16_support(flags: set[str] | None = None) -> str | None:
    """None where the CPU computes bf16 natively, else why bf16 is left out here."""
    if any(f in (cpu_flags() if flags is None else flags) for f in BF16_FLAGS):
        return None
    return (
        f"this CPU has no bf16 instructions ({' / '.join(BF16_FLAGS)} not in /proc/cpuinfo): "
        "bf16 would be emulated, slower than fp32"
    )
