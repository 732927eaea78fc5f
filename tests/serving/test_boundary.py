"""What ships inside artifacts and registered models runs where qdet is not installed: the
shipped files import nothing of qdet, and the rest of ``qdet/serving`` (the loader of both
formats qdet itself uses) nothing outside it (the registry I/O lives in ``qdet/registry``)."""

from tests.helpers import REPO, imported_files

QDET = REPO / "qdet"
SERVING = QDET / "serving"


SHIPPED = {"detector_pyfunc.py", "image_input.py", "aot_detector.py", "roi_align.py"}


def test_nothing_in_serving_imports_the_rest_of_qdet():
    files = sorted(SERVING.glob("*.py"))
    assert {f.name for f in files} >= SHIPPED
    found = {f.name: imported_files(f, by_name=False) for f in files}
    assert not {name: mods for name, mods in found.items() if name in SHIPPED and mods}
    inside = {QDET / "__init__.py"} | set(files)
    assert not {name: mods - inside for name, mods in found.items() if mods - inside}


def test_the_check_sees_a_qdet_import(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("import os\n\ndef f():\n    from qdet.measure.stats import disjoint\n")
    stats = {QDET / "__init__.py", QDET / "measure" / "__init__.py", QDET / "measure" / "stats.py"}
    assert imported_files(leaky, by_name=False) == stats


def test_the_pyfunc_reads_the_metadata_file_torchscript_artifacts_carry():
    from qdet.serving import TORCHSCRIPT_META

    assert f'files = {{"{TORCHSCRIPT_META}": ""}}' in (SERVING / "detector_pyfunc.py").read_text()
