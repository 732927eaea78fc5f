"""The layout a newcomer relies on: short files, no import cycle, and the engine chosen in one
place (``qdet/quant``: everything else asks the engine instead of comparing its name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

QDET = REPO / "qdet"
ENGINE_NAMES = {"fx", "pt2e"}


def modules() -> dict[str, Path]:
    out = {}
    for path in QDET.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The qdet modules ``path`` imports (function-level imports too), with the packages whose
    ``__init__`` such an import runs."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in known}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {m for m in imports(path, known) if m != name and not name.startswith(m + ".")}
        for name, path in known.items()
    }


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted(QDET.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_no_file_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300


def engine_comparisons(source: str) -> list[int]:
    """Lines comparing something with an engine's name (``== "fx"``, ``in ("fx", ...)``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                values = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                if any(isinstance(v, ast.Constant) and v.value in ENGINE_NAMES for v in values):
                    lines.append(node.lineno)
    return lines


def test_no_engine_name_is_compared_outside_quant():
    outside = [p for p in [*QDET.rglob("*.py"), *(REPO / "stages").glob("*.py")] if "quant" not in p.parts]
    found = {str(p.relative_to(REPO)): engine_comparisons(p.read_text()) for p in outside}
    assert not {k: v for k, v in found.items() if v}


def test_the_engine_check_finds_a_comparison():
    assert engine_comparisons('if plan.engine == "fx":\n    pass\nok = name in ("pt2e", "x")\n') == [1, 3]
