"""torchao's X86 Inductor quantizer as qdet configures it: uint8 activations with the configured
PTQ observer, per-channel int8 weights, 7- or 8-bit range, modules in ``quant.skip`` left out."""

from __future__ import annotations

from torchao.quantization.pt2e import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
)
from torchao.quantization.pt2e.quantizer import QuantizationSpec
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    QuantizationConfig,
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from qdet.quant.parts import QuantError
from qdet.quant.plan import QuantPlan
from qdet.quant.pt2e.workarounds import drop_skipped_conv_annotations

OBSERVERS = {
    "minmax": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
}


def quantization_config(plan: QuantPlan, qat: bool) -> QuantizationConfig:
    """torchao's x86 config, with the configured PTQ activation observer and 7- or 8-bit range."""
    base = get_default_x86_inductor_quantization_config(is_qat=qat, reduce_range=plan.reduce_range)
    if not plan.per_channel:
        raise QuantError("quant.per_channel: the pt2e engine quantizes weights per channel only; set true")
    if qat:
        return base
    if plan.observer not in OBSERVERS:
        raise QuantError(f"calibrate.observer: unknown {plan.observer!r}; valid: {', '.join(OBSERVERS)}")
    activation = _with_observer(base.input_activation, OBSERVERS[plan.observer])
    weight = _with_observer(base.weight, PerChannelMinMaxObserver)
    return QuantizationConfig(activation, activation, weight, None, False)


def _with_observer(spec: QuantizationSpec, observer: type) -> QuantizationSpec:
    return QuantizationSpec(
        dtype=spec.dtype,
        quant_min=spec.quant_min,
        quant_max=spec.quant_max,
        qscheme=spec.qscheme,
        ch_axis=spec.ch_axis,
        observer_or_fake_quant_ctr=observer.with_args(eps=2**-12),
    )


class QatQuantizer(X86InductorQuantizer):
    """The x86 quantizer whose skipped convolutions survive QAT's conv+BN fusion."""

    def annotate(self, model):
        model = super().annotate(model)
        drop_skipped_conv_annotations(model)
        return model


def make_quantizer(plan: QuantPlan, part: str, qat: bool) -> X86InductorQuantizer:
    quantizer = (QatQuantizer if qat else X86InductorQuantizer)().set_global(quantization_config(plan, qat))
    for name in plan.skip_for(part):
        quantizer.set_module_name_qconfig(name, None)
    return quantizer
