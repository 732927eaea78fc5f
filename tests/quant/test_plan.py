"""The plan QAT trains: ``quant.skip`` plus what the accuracy search kept float, read from the
search stage's small plan file, with a clear error when that file is not one."""

from __future__ import annotations

import json

import pytest

from qdet.core.errors import QdetError
from qdet.quant.plan import QuantPlan, keep_float, plan_dict, searched_plan, stored_plan


def test_kept_modules_join_the_skips_once():
    plan = QuantPlan(["backbone"], skip=["backbone.body.0"])
    kept = keep_float(plan, ["backbone.body.1", "backbone.body.0"])
    assert kept.skip == ["backbone.body.0", "backbone.body.1"]
    assert plan.skip == ["backbone.body.0"]  # the plan given is left as it was


def test_the_search_plan_file_extends_the_skips(tmp_path):
    path = tmp_path / "search_plan.json"
    path.write_text(json.dumps({"kept_float": ["roi_heads.box_head.fc7"]}))
    assert searched_plan(QuantPlan(["box_head"]), path).skip == ["roi_heads.box_head.fc7"]


@pytest.mark.parametrize("text", [None, "not json", "[]", '{"kept_float": "fc7"}', '{"kept_float": [7]}'])
def test_a_missing_or_malformed_plan_file_names_itself_and_the_fix(tmp_path, text):
    path = tmp_path / "search_plan.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(QdetError, match=r"search_plan.json.*dvc repro search"):
        searched_plan(QuantPlan(["backbone"]), path)


def test_a_checkpoint_s_plan_reads_back_and_one_without_names_itself():
    plan = QuantPlan(["backbone", "rpn_head"], engine="pt2e", skip=["backbone.body.0"])
    assert stored_plan({"plan": plan_dict(plan)}, "models/qat.pt") == plan
    with pytest.raises(QdetError, match=r"^models/float.pt: no quantization plan .*dvc repro calibrate"):
        stored_plan({"model": {}}, "models/float.pt")
    with pytest.raises(QdetError, match=r"^models/qat.pt: its quantization plan does not read .*colour"):
        stored_plan({"plan": {**plan_dict(plan), "colour": "red"}}, "models/qat.pt")
