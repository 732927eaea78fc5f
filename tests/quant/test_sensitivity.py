"""The sensitivity table the calibrate stage writes and the accuracy search reads: one format,
written and read in one module, with a clear error when the file is not that table."""

from __future__ import annotations

import pytest

from qdet.core.errors import QdetError
from qdet.quant.sensitivity import read_sensitivity, write_sensitivity


def test_the_sensitivity_table_reads_back_worst_first(tmp_path):
    path = tmp_path / "sensitivity.csv"
    write_sensitivity({"roi_heads.box_head.fc7": 0.9, "backbone:add_relu_4": 23.8}, path)
    assert list(read_sensitivity(path).items()) == [
        ("roi_heads.box_head.fc7", 0.9),
        ("backbone:add_relu_4", 23.8),
    ]


@pytest.mark.parametrize("text", [None, "", "name,value\na,1\n", "module,sqnr_db\nfc7\n"])
def test_a_missing_or_malformed_sensitivity_table_names_itself(tmp_path, text):
    path = tmp_path / "sensitivity.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(QdetError, match="sensitivity.csv"):
        read_sensitivity(path)
