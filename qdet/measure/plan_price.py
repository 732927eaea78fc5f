"""What keeping modules in float costs, priced before anything is compiled: each quantized
module's multiply-accumulates (torch's FlopCounterMode on the float model) at the best-case
int8 and fp32 convolution rates measured on this CPU (:mod:`qdet.measure.limits`). A plan's
price is its quantized modules' kernel time at those rates: a floor, not a latency, but it
orders plans the way their convolutions will, which is what the accuracy search needs."""

from __future__ import annotations

from qdet.measure.limits import conv_peaks


class KernelPrice:
    """Milliseconds of a plan's quantized-module kernels at the measured best-case rates."""

    def __init__(self, gmacs: dict[str, float], rates: dict[str, float] | None = None) -> None:
        self.gmacs = gmacs
        self.rates = rates or conv_peaks(rounds=10)

    def __call__(self, kept_float: list[str]) -> float:
        int8, fp32 = self.rates["int8_conv_gmac_per_s"], self.rates["fp32_conv_gmac_per_s"]
        return 1000 * sum(g / (fp32 if name in kept_float else int8) for name, g in self.gmacs.items())
