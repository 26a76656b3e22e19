"""Causal self-attention over short windows on the CPU, in C++ (``attention_kernel.cpp``).

:func:`causal_self_attention` takes the fused projection ``qkv`` (B, T, 3 * H * hd), as
:class:`~attnlab.layers.MultiHeadedAttention` computes it, and returns the heads' outputs side by
side (B, T, H * hd): the same function as :func:`attnlab.attention.scaled_dot_product_attention`
with ``is_causal=True``, in float32, with a backward of its own. Why: PyTorch's fused CPU kernel is
built for long sequences (it works in blocks and recomputes the weights in the backward); over 64
positions it took 1.6-2.4 ms per layer of the ``char-cpu`` GPT where this takes 0.56-0.87 (forward
and backward, 2-vCPU AMD EPYC, ``tools/attention_step.py``). Each (batch row, head) is one task,
its T x T weights are kept for the backward, and q, k, v are read where the projection wrote them.
The C++ is written in GCC's vector types, with one copy per instruction set (AVX-512, AVX2 with
FMA, generic), the best this CPU has chosen when it loads: ``copies()``, ``copy()`` and
``use_copy(name)`` on the module. The AVX-512 and AVX2 copies give the same bits.

DialogueGPT's blocks use it (``MultiHeadedAttention(native=True)``); the other models keep
PyTorch's kernels. It serves (:func:`kernel_for`) CPU float32 tensors, no attention dropout, no
mask but the causal one, windows of at most :data:`MAX_CONTEXT` positions, outside autocast and
``torch.compile``. Longer windows keep PyTorch's flash kernel, whose memory does not grow as T^2.
That includes the default GPT's 256 positions: the kernel served them 2x faster per layer in a
trial, but README command 1 (which installs no ``ninja``) would then print a perplexity that
depends on what else the machine has installed (README, "Speed against the references").

``ATTNLAB_ATTENTION`` chooses (:func:`attnlab.native.attention_backend`): ``auto`` (the default)
builds it on first use where this machine can (about 30 s, said on stderr, then cached; a failed
build is one warning line, then PyTorch's kernels), ``torch`` never builds, ``cpp`` is an error
where it cannot be built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from attnlab import native

__all__ = ["KERNEL", "MAX_CONTEXT", "build_if_served", "causal_self_attention", "kernel_for"]

MAX_CONTEXT = 128  # the longest window the kernel serves (its weights cost B * H * T^2 floats per layer)

# -fopenmp: at::parallel_for is header code, parallel only where the extension is built with OpenMP
# (it then shares PyTorch's runtime and threads); -fno-trapping-math lets GCC vectorise the soft-max
KERNEL = native.NativeBuild(Path(__file__).with_name("attention_kernel.cpp"), "attnlab_attention",
                            "the C++ attention kernel", f"{native.ATTENTION_ENV}=torch", instead="PyTorch's kernels",
                            fallback="using PyTorch's",
                            needs="a C++ compiler with OpenMP and ninja (pip install ninja)", seconds=30,
                            cflags=("-O3", "-fno-trapping-math", "-fopenmp", "-Wno-psabi"), ldflags=("-fopenmp",))


def kernel_for(qkv: Tensor, dropout_p: float, backend: str | None = None) -> Any:
    """The kernel's module when it serves causal self-attention of ``qkv`` (B, T, 3 * H * hd) here,
    else None (use PyTorch's). ``backend`` defaults to ``ATTNLAB_ATTENTION``."""
    if (qkv.size(1) > MAX_CONTEXT or dropout_p > 0.0 or qkv.dtype != torch.float32 or qkv.device.type != "cpu"
            or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()):
        return None
    choice = native.attention_backend() if backend is None else backend
    if choice == "cpp":
        return KERNEL.required(f"{native.ATTENTION_ENV}=cpp")
    return KERNEL.auto() if choice == "auto" else None


def build_if_served(context: int, device: torch.device | str) -> None:
    """Build (or load) the kernel now where it will serve windows of ``context`` positions on
    ``device`` under ``ATTNLAB_ATTENTION``: a training run calls this before its clock starts, so
    that the one-time build (about 30 s) is not counted as training, and ``cpp`` without a compiler
    stops the run before any work. Under ``auto``, where the kernel would serve but this machine
    lacks what the build takes, one line on stderr says so and what to install."""
    if torch.device(device).type == "cpu" and context <= MAX_CONTEXT:
        served = kernel_for(torch.empty(1, context, 3), 0.0) is not None
        if not served and native.attention_backend() == "auto" and not native.can_build_native():
            print(f"attnlab: attention runs on PyTorch's kernel; attnlab's C++ kernel trains windows of up to "
                  f"{MAX_CONTEXT} positions faster where the machine has {KERNEL.needs}", file=sys.stderr, flush=True)


class _CausalAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, qkv: Tensor, num_heads: int, module: Any) -> Tensor:
        out, weights = module.forward(qkv, num_heads, True)
        ctx.save_for_backward(qkv, weights)
        ctx.num_heads, ctx.module = num_heads, module  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        qkv, weights = ctx.saved_tensors
        return ctx.module.backward(grad.contiguous(), qkv, weights, ctx.num_heads), None, None


def causal_self_attention(module: Any, qkv: Tensor, num_heads: int) -> Tensor:
    """``qkv`` (B, T, 3 * H * hd), the fused projection ``[q | k | v]`` with heads side by side in
    each, -> (B, T, H * hd): each head's ``softmax(q k^T / sqrt(hd)) v`` over positions j <= i.
    ``module`` is :func:`kernel_for`'s answer. Keeps the weights for the backward only when a
    gradient will be needed."""
    qkv = qkv.contiguous()
    if torch.is_grad_enabled() and qkv.requires_grad:
        return _CausalAttention.apply(qkv, num_heads, module)
    return module.forward(qkv, num_heads, False)[0]
