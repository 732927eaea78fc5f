"""Which variant holds the registry alias: pure policy, no MLflow (the I/O is in publish.py).

Within a run, the gate and then merit choose the run's best variant (:func:`choose_champion`);
across runs, that variant takes the alias only if it beats the model holding it on the same
evaluation (:func:`challenge`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qdet.measure.stats import disjoint


@dataclass
class Candidate:
    variant: str
    artifact: Path
    map50: float
    map50_drop: float
    speedup: float  # vs the fastest float variant of the benchmark run
    speedup_ci95: list[float]
    latency_ms: float
    graph: str  # int8 graph signature; equal graphs run at equal speed, whatever the noise says
    map50_ci95: list[float] = field(default_factory=lambda: [0.0, 1.0])
    artifact_md5: str = ""  # what was registered, byte for byte
    deploy: Path | None = None  # its ONNX / OpenVINO IR folder with the torch-free loader, if written


@dataclass
class Holder:
    """The registry version the alias points at, as its tags recorded it."""

    version: str
    variant: str
    map50: float | None
    map50_ci95: list[float] | None
    speedup: float | None  # vs the best float of its own benchmark run
    speedup_ci95: list[float] | None
    evaluation: str | None  # digest of the images and boxes it was scored on
    artifact_md5: str | None


def challenge(challenger: Candidate, evaluation: str, holder: Holder | None) -> tuple[bool, str]:
    """Whether the run's best variant takes the alias from ``holder``, and why.

    It does when nothing holds the alias, or when, scored on the same evaluation (same images
    and boxes), it is more accurate beyond noise (mAP@.5 intervals apart), or as accurate (they
    overlap) and faster beyond noise (speedup-vs-best-float intervals apart). The same artifact
    registered again keeps the alias where it is; so does anything not compared on the same data."""
    if holder is None:
        return True, "no version holds the alias yet"
    at = f"version {holder.version} ({holder.variant})"
    if holder.artifact_md5 and holder.artifact_md5 == challenger.artifact_md5:
        return False, f"{at} is this same artifact: the alias stays where it is"
    if holder.evaluation is None or holder.map50 is None or holder.map50_ci95 is None:
        return True, f"{at} has no evaluation record to compare with (registered by an older qdet)"
    if holder.evaluation != evaluation:
        return False, (
            f"{at} was scored on other data (evaluation {holder.evaluation[:8]} vs {evaluation[:8]}): "
            "not comparable, so it keeps the alias; move it by hand if this data is the new reference"
        )
    maps = f"mAP@.5 {challenger.map50:.3f} vs {holder.map50:.3f}"
    apart = disjoint(challenger.map50_ci95, holder.map50_ci95)
    if challenger.map50 > holder.map50 and apart:
        return True, f"more accurate than {at} beyond noise: {maps}"
    if challenger.map50 < holder.map50 and apart:
        return False, f"less accurate than {at} beyond noise ({maps}): it keeps the alias"
    if (
        holder.speedup is not None
        and holder.speedup_ci95 is not None
        and challenger.speedup > holder.speedup
        and disjoint(challenger.speedup_ci95, holder.speedup_ci95)
    ):
        return True, (
            f"as accurate as {at} ({maps}, within noise) and "
            f"faster beyond noise (x{challenger.speedup:.2f} vs x{holder.speedup:.2f} the best float)"
        )
    theirs = "?" if holder.speedup is None else f"{holder.speedup:.2f}"
    return False, (
        f"not better than {at} beyond noise ({maps}, x{challenger.speedup:.2f} vs x{theirs} the best "
        "float): it keeps the alias"
    )


def faster_beyond_noise(a: Candidate, b: Candidate) -> bool:
    """``a`` is faster than ``b`` and their speedup intervals do not overlap; never between two
    variants with the same graph (PTQ and QAT of one plan), whose timings differ by noise only."""
    return a.graph != b.graph and a.speedup > b.speedup and disjoint(a.speedup_ci95, b.speedup_ci95)


def _speed(c: Candidate) -> str:
    lo, hi = c.speedup_ci95
    return f"x{c.speedup:.2f} [{lo:.2f}, {hi:.2f}]"


def choose_champion(
    candidates: list[Candidate], max_map_drop: float, min_speedup: float
) -> tuple[Candidate | None, dict[str, str]]:
    """The champion and, for every variant, why it won or lost.

    Gate first (mAP@.5 drop and speedup vs the best float). Among the variants that pass, the
    most accurate one wins unless another passing variant is faster beyond noise; so the winner
    is the most accurate variant that no other passing variant beats on speed beyond noise (the
    fastest always qualifies, so there is one whenever any variant passes). Speed never breaks
    an exact mAP@.5 tie: the variant listed first (the cheaper recipe: float, PTQ, QAT) wins it."""
    why, passing = {}, []
    for c in candidates:
        if c.map50_drop > max_map_drop:
            why[c.variant] = f"fails the gate: mAP@.5 drop {c.map50_drop:.3f} > {max_map_drop}"
        elif c.speedup < min_speedup:
            why[c.variant] = f"fails the gate: speedup vs best float {c.speedup:.2f} < {min_speedup}"
        else:
            passing.append(c)
    if not passing:
        return None, why
    beaten = {c.variant: next((o for o in passing if faster_beyond_noise(o, c)), None) for c in passing}
    eligible = [c for c in passing if beaten[c.variant] is None]
    champion = max(eligible, key=lambda c: c.map50)  # an exact tie: the first listed (float, PTQ, QAT)
    for c in passing:
        if c is champion:
            why[c.variant] = (
                f"champion: passes the gate, mAP@.5 {c.map50:.3f}, {_speed(c)} vs best float; "
                "the most accurate variant that no other passing variant beats on speed beyond noise"
            )
        elif (faster := beaten[c.variant]) is not None:
            why[c.variant] = (
                f"passes the gate; {faster.variant} is faster beyond noise ({_speed(faster)} vs {_speed(c)})"
            )
        elif c.graph == champion.graph:
            why[c.variant] = (
                f"passes the gate; same int8 graph as {champion.variant}, so equal speed, and "
                f"mAP@.5 {c.map50:.3f} vs {champion.map50:.3f}"
            )
        else:
            why[c.variant] = (
                f"passes the gate; mAP@.5 {c.map50:.3f} vs {champion.variant} {champion.map50:.3f}, "
                f"and not faster beyond noise ({_speed(c)} vs {_speed(champion)})"
            )
    return champion, why
