"""The layout a newcomer relies on: short files, no import cycle, and the engine chosen in one
place (``qdet/quant``: everything else asks the engine instead of comparing its name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO, imported_files

QDET = REPO / "qdet"
ENGINE_NAMES = {"fx", "pt2e"}


def cycles(graph: dict) -> list[list]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    groups: list[list] = []

    def visit(v) -> None:
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


def import_graph() -> dict[Path, set[Path]]:
    """Each qdet file and the qdet files it imports, without the ``__init__`` files of the
    packages it is inside of (importing those is not a dependency of its own)."""

    def own_package(f: Path, g: Path) -> bool:
        return g.name == "__init__.py" and g.parent in f.parents

    files = sorted(QDET.rglob("*.py"))
    return {f: {g for g in imported_files(f, by_name=False) if not own_package(f, g)} - {f} for f in files}


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def package_graph() -> dict[str, set[str]]:
    """Each top-level package of qdet and the other packages its files import."""

    def package(f: Path) -> str:
        return f.relative_to(QDET).parts[0] if f.parent != QDET else "qdet"

    graph: dict[str, set[str]] = {}
    for f, imported in import_graph().items():
        graph.setdefault(package(f), set()).update(package(g) for g in imported if package(g) != package(f))
    return graph


def test_no_import_runs_back_up_between_packages():
    """Packages form layers (core, config, serving at the bottom; pipeline, only for stages/, at
    the top): no two packages import each other, even through others."""
    graph = package_graph()
    assert cycles(graph) == []
    assert graph["core"] <= {"qdet"} and graph["serving"] <= {"qdet"}  # the bottom imports nothing above
    top = {"pipeline", "tools"}  # the stage scripts and the hand-run commands stand on these
    assert {p for p, imported in graph.items() if imported & top} == set()


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


REGISTRY = QDET / "config" / "engines.py"


def engine_names_spelled(text: str) -> list[int]:
    """Lines holding a string that is an engine's name (docstrings and comments aside)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ENGINE_NAMES
    )


def test_no_engine_name_is_spelled_outside_quant_and_the_registry():
    """One registry (``qdet/config/engines.py``) names the engines for config, plan, convert and
    the tools; code elsewhere asks the engine or iterates the registry."""
    outside = [p for p in [*QDET.rglob("*.py"), *(REPO / "stages").glob("*.py")] if "quant" not in p.parts]
    found = {str(p.relative_to(REPO)): engine_names_spelled(p.read_text()) for p in outside if p != REGISTRY}
    assert not {k: v for k, v in found.items() if v}
    assert engine_names_spelled(REGISTRY.read_text())  # the registry itself does spell them


def test_the_spelling_check_finds_a_name_but_not_a_docstring():
    assert engine_names_spelled('"""Runs fx and pt2e."""\nx = {"fx": 1}\ny = "pt2e"\n') == [2, 3]


def test_the_engine_check_finds_a_comparison():
    assert engine_comparisons('if plan.engine == "fx":\n    pass\nok = name in ("pt2e", "x")\n') == [1, 3]


def test_the_top_level_is_a_few_packages_by_job():
    entries = sorted(p.name for p in QDET.iterdir() if p.name != "__pycache__")
    assert [e for e in entries if e.endswith(".py")] == ["__init__.py"]  # no loose module
    assert len(entries) <= 17, entries  # __init__.py and 16 packages


def test_variant_names_are_spelled_in_the_table_only():
    """The code that reads results (evaluate, benchmark, register, plots, report) takes variant
    names from ``qdet/variants/table.py``; the code that builds a variant names what it builds."""
    readers = [*(QDET / "measure").glob("*.py"), *(QDET / "report").glob("*.py")]
    readers += [QDET / "variants" / "artifacts.py", *(QDET / "registry").glob("*.py")]
    readers += [REPO / "stages" / f"{name}.py" for name in ("evaluate", "benchmark", "register", "report")]
    names = {"float_eager", "float_ts", "float_inductor", "float_ft", "ptq", "qat", "ort_int8", "ov_int8"}
    found = []
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found


def unexplained_local_imports(source: str) -> list[int]:
    """Lines of imports inside a function with no comment on them or just above them: a
    module's header says what it uses, and an import deferred (to break a cycle, or to load a
    heavy optional library only when needed) says why."""
    lines = source.splitlines()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    here, above = lines[sub.lineno - 1], lines[sub.lineno - 2].strip()
                    if "#" not in here and not above.startswith("#"):
                        found.add(sub.lineno)
    return sorted(found)


def test_every_function_local_import_says_why():
    files = [*QDET.rglob("*.py"), *(REPO / "stages").glob("*.py")]
    found = {str(p.relative_to(REPO)): unexplained_local_imports(p.read_text()) for p in files}
    assert not {k: v for k, v in found.items() if v}


def test_the_local_import_check_finds_one_without_a_reason():
    source = "import os\n\ndef f():\n    import json\n    # cycle\n    import re\n    import csv  # heavy\n"
    assert unexplained_local_imports(source) == [4]
