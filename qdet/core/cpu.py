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


def bf16_or_fp32(setting: str, key: str) -> tuple[str, str]:
    """A ``auto | fp32 | bf16`` setting resolved for this CPU, and why (what the console, the
    metrics and the results page say): ``auto`` is bf16 where the CPU computes it natively, fp32
    elsewhere (emulated bf16 is slower than fp32); an explicit choice stands, with a note where
    bf16 would be emulated. ``key`` names the setting in that note."""
    if setting == "auto":
        no_bf16 = bf16_support()
        return ("fp32", f"auto: {no_bf16}") if no_bf16 else ("bf16", "auto: this CPU computes bf16 natively")
    no_bf16 = bf16_support() if setting == "bf16" else None
    return setting, f"{key}: {setting}" + (f" ({no_bf16})" if no_bf16 else "")
