"""The README as a visitor sees it: short, every link and picture present in a fresh clone, and
no result copied by hand (the results live in reports/results.md, written by the pipeline)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _results_section(readme: str) -> str:
    start = readme.index("\n## Results\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_the_results_section_copies_no_figure_and_links_the_report_and_its_picture():
    section = _results_section(README)
    figures = re.findall(r"(?<![\w./-])\d+\.\d+(?![\w.])", section)
    assert figures == [], f"figures typed into the README's Results (they belong in the report): {figures}"
    assert "(reports/results.md)" in section and "](reports/map_vs_latency.png)" in section


def test_every_relative_link_and_image_is_in_git():
    """A link to an untracked file (a DVC output such as plots/) is broken on a fresh clone and on
    the repository's web page."""
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    )
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", README) if "://" not in t}
    missing = sorted(t for t in targets if t and t not in tracked)
    assert not missing, f"README links files a fresh clone does not have: {missing}"


def test_the_readme_stays_within_300_lines():
    assert len(README.splitlines()) <= 300
