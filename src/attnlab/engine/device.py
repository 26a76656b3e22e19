"""Another name for :mod:`attnlab.device`, the one device and precision policy (core level, shared
by training and the benchmarks).

The engine's modules and older imports say ``attnlab.engine.device``; this module makes that
name *the same module object* as ``attnlab.device`` (``sys.modules`` below), so that reading,
and patching, a name through either one acts on the one definition.
"""

import sys

import attnlab.device
from attnlab.device import (
    CPU_AUTO_BF16,
    GPU_PEAK_FLOPS,
    Precision,
    autocast_context,
    cpu_has_native_bf16,
    gpu_peak_flops,
    make_grad_scaler,
    model_flops_utilization,
    move_to,
    resolve_precision,
    select_device,
    training_device,
)

__all__ = [
    "CPU_AUTO_BF16", "GPU_PEAK_FLOPS", "Precision", "autocast_context", "cpu_has_native_bf16", "gpu_peak_flops",
    "make_grad_scaler", "model_flops_utilization", "move_to", "resolve_precision", "select_device", "training_device",
]

sys.modules[__name__] = attnlab.device
