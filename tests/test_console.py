import subprocess
import sys

SCRIPT = """
import logging, os, subprocess, sys, warnings
from pathlib import Path
from qdet.core.console import console, third_party_to_log
third_party_to_log(Path(sys.argv[1]))
import torch  # noqa: F401  (after: the register stage imports it only when it loads a model)
import mlflow  # noqa: F401
logging.getLogger("mlflow.pyfunc").info("Validating input example")
logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found")
logging.getLogger("torch.utils._pytree").warning("register_constant() is deprecated")
logging.getLogger("torch._dynamo").warning("graph break")
logging.getLogger("torchao").warning("a torchao line")
warnings.warn("a third-party warning")
os.write(2, b"[W Quantizer.cpp] Warning: deprecated\\n")  # C++ code writes to fd 2 directly
print("ours", file=sys.stderr)
console.print("our console")
print(os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"], os.environ["MLFLOW_CONFIGURE_LOGGING"])
subprocess.run([sys.executable, "-c", "import sys; print('child', file=sys.stderr)"], stderr=sys.stderr)
raise RuntimeError("a bug: its traceback stays on the console")
"""


def test_third_party_lines_go_to_the_log_ours_stay(tmp_path):
    log = tmp_path / "logs" / "stage.log"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[:3] == ["ours", "our console", "child"]
    assert lines[3].startswith("Traceback") and lines[-1].endswith("its traceback stays on the console")
    assert done.stdout.split() == ["false", "false"]  # no download bars, no mlflow stderr handler
    text = log.read_text()
    for line in (
        "INFO mlflow.pyfunc: Validating input example",
        "WARNING torch.utils.cpp_extension: No CUDA runtime is found",
        "WARNING torch.utils._pytree: register_constant() is deprecated",
        "WARNING torch._dynamo: graph break",
        "WARNING torchao: a torchao line",
        "a third-party warning",
        "[W Quantizer.cpp] Warning: deprecated\n",
    ):
        assert line in text
    assert "ours" not in text and "Traceback" not in text
