"""Every stage script imports: a name moved in the library fails here in a second, not at the end
of a fifteen-minute pipeline."""

import importlib.util
from pathlib import Path

import pytest

STAGES = sorted((Path(__file__).resolve().parents[1] / "stages").glob("*.py"))


@pytest.mark.parametrize("script", STAGES, ids=[s.stem for s in STAGES])
def test_stage_script_imports(script):
    spec = importlib.util.spec_from_file_location(f"stage_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.app.registered_commands, f"{script.name} defines no Typer command"
