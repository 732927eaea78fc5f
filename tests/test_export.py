import pytest
import torch
from torch import nn

from qdet.quant.torchscript import forget_dead_builtins


def test_a_dead_op_id_reused_by_a_module_attribute_does_not_break_scripting():
    conv = nn.Conv2d(3, 4, 3)
    # What torch.library leaves behind when it replaces an op object: its old id, now reused
    # by an unrelated object (here the conv's padding list) in TorchScript's builtin table.
    table = torch.jit._builtins._get_builtin_table()
    table[id(conv._reversed_padding_repeated_twice)] = "quantized_decomposed::quantize_per_tensor"
    try:
        torch.jit.script(nn.Conv2d(3, 4, 3))  # a conv whose list lives elsewhere is fine
        with pytest.raises(RuntimeError, match="builtin cannot be used as a value"):
            torch.jit.script(conv)
        assert forget_dead_builtins() >= 1
        scripted = torch.jit.script(conv)
        x = torch.randn(1, 3, 8, 8)
        torch.testing.assert_close(scripted(x), conv(x))
    finally:
        table.pop(id(conv._reversed_padding_repeated_twice), None)


def test_live_ops_stay_in_the_builtin_table():
    import torchvision  # noqa: F401

    forget_dead_builtins()
    table = torch.jit._builtins._get_builtin_table()
    assert table[id(torch.ops.torchvision.nms._op)] == "torchvision::nms"
    assert forget_dead_builtins() == 0


def test_a_truncated_or_foreign_artifact_is_one_line_naming_it(tmp_path):
    from qdet.variants.artifacts import ArtifactError, load_variant

    cut = tmp_path / "qat.ts"
    cut.write_bytes(b"PK\x03\x04" + b"\x00" * 200)  # a zip header, then nothing: a cut TorchScript file
    garbage = tmp_path / "ort_int8.onnx"
    garbage.write_bytes(b"garbage" * 20)
    for name, path in (("qat", cut), ("ort_int8", garbage)):
        with pytest.raises(ArtifactError) as caught:
            load_variant(name, path, threads=1)
        message = str(caught.value)
        assert message.startswith(f"{path}: does not load (") and "rerun the stage that wrote it" in message
        assert "\n" not in message
