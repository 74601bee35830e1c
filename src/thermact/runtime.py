"""Process-wide numeric settings for fast CPU work.

Denormal (subnormal) floats are hundreds of times slower than normal ones on x86 CPUs. Real thermal
clips drive some ThermalNet activations and gradients into that range: forward + backward of a batch
of 8 real clips took 1.70 s instead of 0.25 s on 2 cores until denormals were flushed to zero
(measured with benchmarks/bench_train.py). Flushing changes results only below ~1e-38.
"""

from __future__ import annotations

import torch


def configure_cpu_math() -> None:
    """Flush denormal floats to zero (no-op where the CPU does not support it)."""
    torch.set_flush_denormal(True)
