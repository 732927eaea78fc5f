"""What ships inside artifacts and registered models runs where qdet is not installed: nothing
in ``qdet/serving`` may import the rest of qdet (the registry I/O lives in ``qdet/registry``)."""

import ast
from pathlib import Path

SERVING = Path(__file__).resolve().parents[2] / "qdet" / "serving"


def qdet_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if n == "qdet" or n.startswith("qdet.")]


def test_nothing_in_serving_imports_the_rest_of_qdet():
    files = sorted(SERVING.glob("*.py"))
    assert {f.name for f in files} >= {
        "detector_pyfunc.py",
        "image_input.py",
        "aot_detector.py",
        "roi_align.py",
    }
    found = {f.name: qdet_imports(f) for f in files}
    assert not {name: mods for name, mods in found.items() if mods}


def test_the_check_sees_a_qdet_import(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("import os\n\ndef f():\n    from qdet.stats import disjoint\n")
    assert qdet_imports(leaky) == ["qdet.stats"]


def test_the_pyfunc_reads_the_metadata_file_torchscript_artifacts_carry():
    from qdet.serving import TORCHSCRIPT_META

    assert f'files = {{"{TORCHSCRIPT_META}": ""}}' in (SERVING / "detector_pyfunc.py").read_text()
