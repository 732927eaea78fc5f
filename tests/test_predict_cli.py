"""qdet-predict runs an artifact on images; it must not drag in the training code."""

import subprocess
import sys

TRAINING = ("qdet.training", "qdet.engine", "qdet.stage", "qdet.distributed", "qdet.quant", "qdet.tracking")


def test_predict_cli_imports_none_of_the_training_code():
    code = "import sys, qdet.predict_cli; print(' '.join(m for m in sys.modules if m.startswith('qdet')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "qdet.predict" in loaded
    assert not [m for m in loaded if m.startswith(TRAINING)], loaded
