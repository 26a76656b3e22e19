"""Device and precision: pick the accelerator, decide autocast, build the gradient scaler."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from attnlab.errors import AttnlabError

# Does bf16 autocast speed up training on the CPU? Measured on this project's 2-core AMD EPYC
# (AVX-512 incl. avx512_bf16), torch 2.13.0, a causal LM on attnlab.layers.Transformer (vocab 256,
# forward + backward + AdamW step), median of 3 interleaved rounds of 8 steps, run alone:
#   dim  32, 2 layers, T  24, B 64:  fp32  15 ms/step, bf16  40 ms/step  (bf16 2.57x slower)
#   dim  64, 2 layers, T  64, B 32:  fp32  28 ms/step, bf16  47 ms/step  (1.69x slower)
#   dim 128, 4 layers, T 128, B 16:  fp32 110 ms/step, bf16 105 ms/step  (0.95: a wash)
#   dim 256, 4 layers, T 256, B  8:  fp32 343 ms/step, bf16 231 ms/step  (0.67: 1.5x faster)
# The casts cost more than the bf16 matmuls save until the model is wider than the CPU presets
# of this project (dim <= 128), so precision='auto' trains in fp32 on the CPU; ask for
# precision='bf16' for wider models. A later host, an AMD EPYC with AVX2 only (no AVX-512, so
# torch.ops.mkldnn._is_mkldnn_bf16_supported() is False), emulates bf16: a training step of the
# width-192 cpu-20min DialogueGPT took 5.2 s in bf16 against 0.31 s in fp32 (17x slower).
# resolve_precision warns when bf16 is asked for on such a CPU.
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


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> ContextManager[Any]:
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
