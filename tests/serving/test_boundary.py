"""What ships inside artifacts and registered models runs where qdet is not installed: nothing
in ``qdet/serving`` may import the rest of qdet (the registry I/O lives in ``qdet/registry``)."""

from tests.helpers import REPO, imported_files

QDET = REPO / "qdet"
SERVING = QDET / "serving"


def test_nothing_in_serving_imports_the_rest_of_qdet():
    files = sorted(SERVING.glob("*.py"))
    assert {f.name for f in files} >= {
        "detector_pyfunc.py",
        "image_input.py",
        "aot_detector.py",
        "roi_align.py",
    }
    found = {f.name: imported_files(f, by_name=False) for f in files}
    assert not {name: mods for name, mods in found.items() if mods}


def test_the_check_sees_a_qdet_import(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("import os\n\ndef f():\n    from qdet.stats import disjoint\n")
    assert imported_files(leaky, by_name=False) == {QDET / "__init__.py", QDET / "stats.py"}


def test_the_pyfunc_reads_the_metadata_file_torchscript_artifacts_carry():
    from qdet.serving import TORCHSCRIPT_META

    assert f'files = {{"{TORCHSCRIPT_META}": ""}}' in (SERVING / "detector_pyfunc.py").read_text()
