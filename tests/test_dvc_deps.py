"""Every stage lists in dvc.yaml all the project code it runs, so a code change reruns it."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

MODULE_STRING = re.compile(r"^qdet(\.[a-z0-9_]+)+$")  # e.g. "-m", "qdet.memprobe" in a subprocess


def module_file(name: str) -> Path | None:
    """The file of a qdet module or package, or None for anything else."""
    if name != "qdet" and not name.startswith("qdet."):
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path) -> set[Path]:
    """qdet files that ``path`` imports, anywhere in it (function-local imports included), plus
    modules it starts by name in a subprocess (``python -m qdet.x``); the packages on the way too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from qdet import bench`
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value)
        ):
            names.add(node.value)
    files = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing qdet.a.b runs qdet/__init__ and qdet/a/__init__
            found = module_file(".".join(parts[:i]))
            if found:
                files.add(found)
    return files


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += imported_files(path) - seen
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def script_of(stage: dict) -> Path:
    words = shlex.split(stage["cmd"])
    return REPO / next(w for w in words if w.startswith("stages/") and w.endswith(".py"))


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_depends_on_all_code_it_runs(name: str) -> None:
    stage = stages()[name]
    deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage["deps"]]
    missing = sorted(
        p.relative_to(REPO).as_posix() for p in closure(script_of(stage)) if not covered(p, deps)
    )
    assert not missing, f"stage {name}: dvc.yaml deps miss {missing}"


def test_walker_sees_local_imports_and_module_strings(tmp_path: Path) -> None:
    """The walker itself: a function-local import and a ``-m qdet.x`` string both count."""
    script = tmp_path / "s.py"
    script.write_text('def f():\n    from qdet.files import write_json\n\ncmd = ["-m", "qdet.memprobe"]\n')
    found = {p.relative_to(REPO).as_posix() for p in imported_files(script)}
    assert found == {"qdet/__init__.py", "qdet/files.py", "qdet/memprobe.py"}


def test_qat_depends_on_its_schedule_but_not_on_the_control_switch() -> None:
    """``qat.control`` adds the float_ft control; switching it on must not retrain QAT."""
    import dataclasses

    from qdet.config import QatConfig

    params = {p for p in stages()["qat"]["params"] if isinstance(p, str) and p.startswith("qat.")}
    fields = {f"qat.{f.name}" for f in dataclasses.fields(QatConfig)}
    assert params == fields - {"qat.control"}
