"""PT2E end to end without deprecations: calibrate -> convert -> compile ahead of time -> load in
a fresh process without qdet -> detect, with torch's deprecation warnings turned into errors."""

import copy
import subprocess
import sys
import warnings
import zipfile

import pytest
import torch

from qdet.models.detector import build_detector
from qdet.quant import pt2e
from qdet.quant.aot import CompilerMissing, check_compiler, save_compiled
from qdet.quant.parts import PARTS
from qdet.quant.plan import QuantPlan
from tests.helpers import TINY_MODEL

LOAD_WITHOUT_QDET = """
import importlib.util, json, sys
sys.modules["qdet"] = None  # any import of qdet now fails
import torch
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("aot_detector", folder + "/aot_detector.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
detector = module.load(folder)
torch.manual_seed(0)
(out,) = detector([torch.rand(3, 96, 128)])
print(json.dumps({k: list(v.shape) for k, v in out.items()}), detector.classes)
"""


@pytest.mark.slow  # an AOTInductor compile (1.8 min); the PT2E pipeline test compiles too
def test_pt2e_path_raises_no_torch_deprecation_and_loads_without_qdet(tmp_path):
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=2).eval()
    plan = QuantPlan(list(PARTS), engine="pt2e")
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("error", category=category, module=r"torch(\.|$)")
            warnings.filterwarnings("error", category=category, module=r"torchao(\.|$)")
        prepared = pt2e.prepare(copy.deepcopy(model), plan, qat=False)
        with torch.no_grad():
            for _ in range(2):
                prepared([torch.rand(3, 96, 128)])
        int8 = pt2e.convert(prepared, plan)
        size, seconds = save_compiled(int8, TINY_MODEL, {"classes": ["a", "b"]}, tmp_path / "int8")
    assert set(seconds) == set(PARTS) and size > 0
    assert {p.name for p in (tmp_path / "int8").iterdir()} == {
        "aot_detector.py",
        "roi_align.py",
        "detector.json",
        *(f"{part}.pt2" for part in PARTS),
    }
    with zipfile.ZipFile(tmp_path / "int8" / "backbone.pt2") as package:
        wrapper = next(n for n in package.namelist() if n.endswith(".wrapper.cpp"))
        code = package.read(wrapper).decode()
    assert "qconv" in code  # the compiled backbone runs oneDNN int8 convolutions
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_QDET, str(tmp_path / "int8")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shapes, classes = done.stdout.strip().rsplit(" ", 1)[0], done.stdout.strip().split(" ", 1)[1]
    assert '"boxes"' in shapes and "['a', 'b']" in classes


def test_missing_compiler_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(CompilerMissing, match="needs a C\\+\\+ compiler.*apt-get install g\\+\\+"):
        check_compiler()
