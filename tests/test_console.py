import os
import subprocess
import sys

from qdet.console import native_stderr_to

SCRIPT = """
import logging, os, sys, warnings
from pathlib import Path
from qdet.console import third_party_to_log
third_party_to_log(Path(sys.argv[1]))
import mlflow  # noqa: F401
logging.getLogger("mlflow.pyfunc").info("Validating input example")
warnings.warn("a third-party warning")
print("ours", file=sys.stderr)
print(os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"], os.environ["MLFLOW_CONFIGURE_LOGGING"])
"""


def test_third_party_lines_go_to_the_log_ours_stay(tmp_path):
    log = tmp_path / "logs" / "stage.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, check=True
    )
    assert done.stderr == "ours\n"
    assert done.stdout.split() == ["false", "false"]  # no download bars, no mlflow stderr handler
    text = log.read_text()
    assert "INFO mlflow.pyfunc: Validating input example" in text and "a third-party warning" in text


def test_native_stderr_goes_to_the_log_only_inside_the_block(tmp_path, capfd):
    log = tmp_path / "register.log"
    with native_stderr_to(log):
        os.write(2, b"[W Quantizer.cpp] Warning: deprecated\n")
    os.write(2, b"after\n")
    assert log.read_text() == "[W Quantizer.cpp] Warning: deprecated\n"
    assert capfd.readouterr().err == "after\n"
