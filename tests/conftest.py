"""Shared fixtures: tiny synthetic datasets in the real raw layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qdet.config import SyntheticConfig
from qdet.data.synthetic import write_gtsdb, write_pennfudan


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def gtsdb_raw(tmp_path: Path) -> Path:
    """12 synthetic GTSDB images (256x160) in tmp/raw/FullIJCNN2013."""
    write_gtsdb(tmp_path / "raw", SyntheticConfig(12, 256, 160, 16, 48, 3, 0.2), seed=1)
    return tmp_path / "raw"


@pytest.fixture
def pennfudan_raw(tmp_path: Path) -> Path:
    write_pennfudan(tmp_path / "raw", SyntheticConfig(6, 256, 200, 16, 48, 3, 0.0), seed=2)
    return tmp_path / "raw"
