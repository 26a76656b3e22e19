"""Device and precision, one policy for training and the benchmarks: pick the accelerator, decide
autocast, build the gradient scaler.

Training asks :func:`training_device` and :func:`resolve_precision` (``train.device``,
``train.precision``); a benchmark asks :func:`bench_device` and runs under :func:`autocast_for`,
which is what ``precision='auto'`` resolves to on that device, so that a benchmark measures the
precision a training run would use. :func:`describe_device` names both for a table's title.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnlab.errors import AttnlabError

# Does bf16 autocast speed up training on the CPU? Only with native bf16 kernels (AVX-512 BF16 or
# AMX), and even then the casts cost more than the bf16 matmuls save at the widths of this
# project's CPU presets; without native kernels bf16 is emulated and many times slower. The
# measurements are in the README ("The training engine"). So precision='auto' trains in fp32 on
# the CPU; ask for precision='bf16' for wider models, and resolve_precision warns when the CPU
# has no native bf16.
CPU_AUTO_BF16 = False


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:  # a build without oneDNN: nothing to warn about
        return True


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if available, then Apple MPS, then CPU. Asking for a missing one is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AttnlabError("device 'cuda' was requested but CUDA is not available; use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AttnlabError("device 'mps' was requested but MPS is not available; use --device cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise AttnlabError(f"unknown device {name!r}; use one of auto, cpu, cuda, mps") from None


def training_device(name: str = "auto") -> torch.device:
    """:func:`select_device`, and under ``torchrun`` on CUDA this process's own GPU (``LOCAL_RANK``)."""
    device = select_device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


@dataclass(frozen=True)
class Precision:
    """What a precision setting means on a device."""

    name: str  # resolved: 'bf16', 'fp16' or 'fp32'
    autocast_dtype: torch.dtype | None  # None: no autocast (fp32)
    use_scaler: bool  # fp16 needs loss scaling to keep small gradients from underflowing


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Map ``auto|bf16|fp16|fp32`` to an autocast dtype for ``device``.

    ``auto``: bf16 on CUDA when supported, otherwise fp16 with a GradScaler; on the CPU bf16 only
    if :data:`CPU_AUTO_BF16` (see the measurement above); fp32 on MPS.
    """
    kind = device.type
    if precision == "auto":
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif kind == "cpu" and CPU_AUTO_BF16:
            precision = "bf16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return Precision("fp32", None, False)
    if precision == "bf16":
        if kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise AttnlabError("this GPU does not support bf16; use --set train.precision=fp16 (or auto)")
        if kind == "cpu" and not cpu_has_native_bf16():
            warnings.warn("this CPU has no native bf16 (no AVX-512 BF16 or AMX): bf16 autocast is "
                          "emulated and can be many times slower than fp32; use "
                          "--set train.precision=fp32 (or auto)", stacklevel=2)
        return Precision("bf16", torch.bfloat16, False)
    if precision == "fp16":
        return Precision("fp16", torch.float16, kind in ("cuda", "cpu"))
    raise AttnlabError(f"unknown precision {precision!r}; use one of auto, bf16, fp16, fp32")


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """``torch.autocast`` for ``device`` in ``dtype``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler (a disabled one is a transparent no-op, so the loop has one code path)."""
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict/list/tuple batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def bench_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when there is one) for a benchmark; a clear error when
    CUDA is asked for and missing."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise AttnlabError("--device cuda was asked for but CUDA is not available; use --device cpu")
    return torch.device(name)


def autocast_for(device: torch.device) -> AbstractContextManager[Any]:
    """Autocast as ``precision='auto'`` decides on ``device``: bf16 on a GPU (fp16 where bf16 is
    missing), nothing on the CPU."""
    return autocast_context(device, resolve_precision("auto", device).autocast_dtype)


def describe_device(device: torch.device) -> str:
    """``cpu (2 threads, fp32)`` or ``NVIDIA H100 80GB HBM3 (bf16 autocast)``, for a table's title."""
    precision = resolve_precision("auto", device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({precision.name} autocast)"
    return f"cpu ({torch.get_num_threads()} threads, {precision.name})"


# Peak dense bf16/fp16 tensor-core throughput (FLOP/s) of common GPUs, from the vendors' data
# sheets (SXM parts where there are two; sparsity not counted). Matched against the device name.
GPU_PEAK_FLOPS = {
    "H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
    "A10G": 125e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12,
}


def gpu_peak_flops(name: str) -> float | None:
    """The peak bf16/fp16 FLOP/s of a GPU by its name (longest matching key), or None if unknown."""
    matches = [key for key in GPU_PEAK_FLOPS if key in name]
    return GPU_PEAK_FLOPS[max(matches, key=len)] if matches else None


def cpu_name() -> str:
    """The CPU's model name, as ``lscpu`` shows it (``/proc/cpuinfo`` on Linux, else the platform's)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def peak_path() -> Path:
    """Where ``attnlab bench peak`` saves this machine's measured peak: ``peak.json`` in attnlab's
    cache folder (:func:`attnlab.files.cache_dir`, by default ``~/.cache/attnlab``)."""
    from attnlab.files import cache_dir

    return cache_dir() / "peak.json"


def cpu_peak_flops(precision: str) -> float | None:
    """The peak FLOP/s in ``precision`` (``fp32``, ``bf16``) that ``attnlab bench peak`` measured on
    this CPU at the current thread count, or None: no saved peak, an unreadable one, one measured
    on another CPU or with another number of threads, or none in that precision."""
    try:
        saved = json.loads(peak_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("cpu") != cpu_name() or saved.get("threads") != torch.get_num_threads():
        return None
    peak = (saved.get("peak_flops") or {}).get(precision)
    return float(peak) if isinstance(peak, (int, float)) and peak > 0 else None


def model_flops_utilization(model: Any, tokens_per_sec: float, device: torch.device,
                            precision: Precision) -> float | None:
    """nanoGPT's MFU: the FLOP/s that training at ``tokens_per_sec`` needs (the model's
    ``flops_per_token()``: 6 per parameter plus the attention term), divided by the peak: on CUDA
    the GPU's bf16/fp16 data-sheet peak, on the CPU the peak ``attnlab bench peak`` measured in the
    run's precision (:func:`cpu_peak_flops`).

    None when the model does not state its FLOPs, for fp32 training on CUDA, for an unknown GPU,
    on a CPU without a saved peak for its name, thread count and precision, and on other devices.
    """
    per_token = getattr(model, "flops_per_token", None)
    if not callable(per_token):
        return None
    peak: float | None = None
    if device.type == "cuda" and precision.autocast_dtype is not None:
        peak = gpu_peak_flops(torch.cuda.get_device_name(device))
    elif device.type == "cpu":
        peak = cpu_peak_flops(precision.name)
    return None if peak is None else per_token() * tokens_per_sec / peak
