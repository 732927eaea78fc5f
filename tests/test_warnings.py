"""Warning filters name what they hide, by message and category (or module): a blanket filter
would also hide the warning that matters next time."""

import re
import warnings
from pathlib import Path

from qdet.core.console import quiet_warnings
from qdet.models.onnx import EXPORT_NOISE

ROOT = Path(__file__).resolve().parents[1]


def _shown(message: str, category: type[Warning]) -> bool:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_warnings(deprecations=True)
        warnings.warn(message, category, stacklevel=1)
    return bool(seen)


def test_the_fx_routes_deprecations_are_hidden_and_nothing_else():
    assert not _shown("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning)
    assert not _shown("torch.ao.quantization is deprecated and will be removed in 2.10.", DeprecationWarning)
    assert _shown("torch.export.export_for_training is deprecated", FutureWarning)  # news for PT2E
    assert _shown("`torch.jit.script` is deprecated", UserWarning)  # another category: shown


def test_no_blanket_filter_in_the_code():
    blanket = re.compile(
        r"simplefilter\(\s*[\"']ignore[\"']\s*\)|filterwarnings\(\s*[\"']ignore[\"']\s*(\)|,\s*category=)"
    )
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("qdet", "stages")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if blanket.search(line)
    ]
    assert not found


def test_every_export_filter_names_a_message_or_a_module():
    for message, category, module in EXPORT_NOISE:
        assert issubclass(category, Warning) and (message or module), (message, category, module)
