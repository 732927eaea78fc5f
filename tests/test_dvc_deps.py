"""Every stage lists in dvc.yaml all the project code it runs, so a code change reruns it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, imported_files


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
    script.write_text(
        'def f():\n    from qdet.core.files import write_json\n\ncmd = ["-m", "qdet.measure.memprobe"]\n'
    )
    found = {p.relative_to(REPO).as_posix() for p in imported_files(script)}
    packages = {"qdet/__init__.py", "qdet/core/__init__.py", "qdet/measure/__init__.py"}
    assert found == packages | {"qdet/core/files.py", "qdet/measure/memprobe.py"}


def test_qat_depends_on_its_schedule_but_not_on_the_control_switch() -> None:
    """``qat.control`` adds the float_ft control; switching it on must not retrain QAT."""
    import dataclasses

    from qdet.config import QatConfig

    params = {p for p in stages()["qat"]["params"] if isinstance(p, str) and p.startswith("qat.")}
    fields = {f"qat.{f.name}" for f in dataclasses.fields(QatConfig)}
    assert params == fields - {"qat.control"}


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_package_folders(name: str) -> None:
    """One line per package a stage runs keeps dvc.yaml readable in a minute; a single file of
    a package listed instead would miss the package's other files when they change."""
    deps = [next(iter(d)) if isinstance(d, dict) else d for d in stages()[name]["deps"]]
    assert [d for d in deps if d.startswith("qdet/") and d.count("/") > 1] == []
