"""Each engine implements the whole :class:`Engine` interface, artifacts included, and the
choice of engine is checked in one place."""

import inspect

import pytest

from qdet.quant import deprecated_upstream
from qdet.quant.engines import ENGINES, float_dtype, get_engine
from qdet.quant.interface import Engine
from qdet.quant.parts import QuantError

MEMBERS = [name for name in vars(Engine) if not name.startswith("_")] + list(Engine.__annotations__)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_implements_every_member_of_the_interface(name):
    engine = get_engine(name)
    missing = [m for m in MEMBERS if not hasattr(engine, m)]
    assert not missing
    for member in MEMBERS:
        declared = getattr(Engine, member, None)
        if inspect.isfunction(declared):  # same parameters, without the protocol's self
            wanted = list(inspect.signature(declared).parameters)[1:]
            assert list(inspect.signature(getattr(engine, member)).parameters) == wanted, member


def test_interface_covers_the_artifact():
    assert {"save_int8", "save_float", "ARTIFACT", "prepare", "convert"} <= set(MEMBERS)


def test_unknown_engine_is_one_line_naming_the_key():
    with pytest.raises(QuantError, match="quant.engine: unknown engine 'onnx'; valid: fx, pt2e"):
        get_engine("onnx")


def test_only_fx_is_deprecated_upstream():
    assert [n for n in sorted(ENGINES) if deprecated_upstream(n)] == ["fx"]


def test_interface_covers_what_readers_asked_by_name_before():
    assert {"module_name", "timed_int8"} <= set(MEMBERS)


def test_frozen_layers_are_found_by_their_float_names_in_each_engine():
    assert get_engine("fx").module_name("backbone.body.layer1") == "backbone.body.layer1"
    pt2e = get_engine("pt2e")
    assert pt2e.module_name("backbone.body.layer1") == "backbone.graph_module.body.layer1"
    assert pt2e.module_name("roi_heads.box_head.fc6") == "roi_heads.box_head.graph_module.fc6"
    assert pt2e.module_name("rpn.anchor_generator") == "rpn.anchor_generator"  # outside the parts


def test_float_dtype_auto_is_bf16_only_with_a_bf16_cpu_and_engine(monkeypatch):
    from qdet.core import cpu

    monkeypatch.setattr(cpu, "bf16_support", lambda: None)  # a CPU with bf16 instructions
    assert float_dtype("auto", "pt2e") == ("bf16", "auto: this CPU computes bf16 natively")
    assert float_dtype("auto", "fx") == ("fp32", "auto: the fx engine computes its float ops in fp32")
    assert float_dtype("fp32", "pt2e") == ("fp32", "quant.float_dtype: fp32")
    monkeypatch.setattr(cpu, "bf16_support", lambda: "no bf16 here")
    assert float_dtype("auto", "pt2e") == ("fp32", "auto: no bf16 here")
    assert float_dtype("bf16", "pt2e") == ("bf16", "quant.float_dtype: bf16 (no bf16 here)")  # asked: kept
    with pytest.raises(QuantError, match="quant.float_dtype: bf16 is not possible with quant.engine fx"):
        float_dtype("bf16", "fx")


def test_every_registered_engine_is_implemented_and_loads():
    from qdet.quant.engines import MODULES

    assert list(MODULES) == list(ENGINES)
    for name in ENGINES:
        assert get_engine(name).ARTIFACT
