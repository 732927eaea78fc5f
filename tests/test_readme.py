"""The README copies no result by hand: every figure in its Results section is in the report the
pipeline wrote."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _results_section(readme: str) -> str:
    start = readme.index("\n## Results\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_every_figure_in_the_readme_results_is_in_the_report():
    section = _results_section((ROOT / "README.md").read_text())
    report = (ROOT / "reports" / "results.md").read_text()
    figures = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", section)
    missing = [f for f in figures if f not in report]
    assert not missing, f"README Results figures not in reports/results.md: {missing}"
