"""AdamW's step in one pass over memory, in C++ (``adamw_kernel.cpp``), bit for bit torch's own.

torch's AdamW step on the CPU runs eight element-wise operations over every tensor, each a full
pass over memory. :func:`adamw_step` does the same arithmetic, element by element, in one pass;
and it reads the gradients where autograd left them, so :class:`~attnlab.engine.flat_adamw.FlatAdamW`
no longer gathers them into one buffer first. On the ``char-cpu`` GPT that took the optimizer from
1.69-2.10 ms to 0.91-1.26 ms, and the whole 44-51 ms step ran 1.010-1.026x faster (2-vCPU AMD EPYC,
2 threads, ``tools/optimizer_step.py``).

The weights and moments come out identical to torch's: the kernel keeps torch's order of
operations and its roundings (its fused multiply-adds in ``lerp`` and ``addcmul``, MKL's square
root). Because that rests on how torch was built, :func:`kernel` checks the loaded kernel against
torch's step on this machine once per process (:func:`reproduces_torch`) and uses it only if every
bit agrees; otherwise torch's step runs, after one warning line.

``ATTNLAB_ADAMW`` chooses (:func:`attnlab.native.adamw_backend`): ``auto`` (the default) builds it
where this machine can (about 10 s, once, then cached), ``torch`` never builds, ``cpp`` is an
error where it cannot be built or does not reproduce torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.adam import adam

from attnlab import native
from attnlab.errors import AttnlabError

__all__ = ["KERNEL", "adamw_step", "kernel", "reproduces_torch", "served", "torch_adamw"]

KERNEL = native.NativeBuild(Path(__file__).with_name("adamw_kernel.cpp"), "attnlab_adamw", "the C++ AdamW step",
                            f"{native.ADAMW_ENV}=torch", instead="torch's AdamW step", fallback="using torch's",
                            needs="a C++ compiler with OpenMP and ninja (pip install ninja)", seconds=10,
                            cflags=("-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno"),
                            ldflags=("-fopenmp",))

_checked: dict[int, bool] = {}  # id(module) -> whether it reproduced torch's step here


def served(tensors: Sequence[Tensor]) -> bool:
    """Whether the kernel can step these tensors (parameters, gradients, moments): dense float32,
    contiguous, on the CPU."""
    return all(t.layout == torch.strided and t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
               for t in tensors)


def kernel(backend: str | None = None) -> Any:
    """The kernel's module where ``backend`` (default: ``ATTNLAB_ADAMW``) asks for it and it
    reproduces torch's step on this machine, else None (use torch's step)."""
    choice = native.adamw_backend() if backend is None else backend
    if choice == "torch":
        return None
    module = KERNEL.required(f"{native.ADAMW_ENV}=cpp") if choice == "cpp" else KERNEL.auto()
    if module is None:
        return None
    if id(module) not in _checked:
        _checked[id(module)] = reproduces_torch(module)
        if not _checked[id(module)] and choice == "auto":
            native.warn(f"the C++ AdamW step does not reproduce torch's bit for bit on this machine; using torch's "
                        f"({native.ADAMW_ENV}=torch skips the attempt)")
    if not _checked[id(module)]:
        if choice == "cpp":
            raise AttnlabError(f"{native.ADAMW_ENV}=cpp: the C++ AdamW step does not reproduce torch's bit for bit "
                               f"on this machine; set {native.ADAMW_ENV}=torch")
        return None
    return module


def adamw_step(module: Any, param: Tensor, grads: Sequence[Tensor], exp_avg: Tensor, exp_avg_sq: Tensor,
               step_t: Tensor, *, lr: float, beta1: float, beta2: float, weight_decay: float, eps: float) -> None:
    """One AdamW step of ``param`` in place, as torch's single-tensor AdamW takes it: ``step_t``
    counts up, and the moments and ``param`` are updated. ``grads`` is the gradient in pieces, in
    order (the gradients of the parameters that are views of a flat ``param``), or one tensor; all
    float32, contiguous, on the CPU (:func:`served`)."""
    n = param.numel()
    if exp_avg.numel() != n or exp_avg_sq.numel() != n or sum(g.numel() for g in grads) != n:
        raise ValueError(f"adamw_step: the moments ({exp_avg.numel()}, {exp_avg_sq.numel()}) and the gradient's "
                         f"pieces ({sum(g.numel() for g in grads)}) must hold as many elements as the parameter ({n})")
    step_t += 1
    step = step_t.item()  # torch's _get_value: a Python float
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    module.step(param.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), [g.data_ptr() for g in grads],
                [g.numel() for g in grads], 1 - lr * weight_decay, 1 - beta1, beta2, 1 - beta2,
                bias_correction2 ** 0.5, eps, -(lr / bias_correction1))
    torch.autograd.graph.increment_version([param, exp_avg, exp_avg_sq])  # as torch's in-place operations do


def torch_adamw(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                steps: list[Tensor], *, lr: float, beta1: float, beta2: float, weight_decay: float, eps: float,
                foreach: bool | None = None) -> None:
    """torch's own AdamW step of these tensors (its functional ``adam`` with decoupled weight decay),
    as ``torch.optim.AdamW.step`` calls it for a group of plain settings: what the C++ step
    reproduces, and what runs where it does not serve."""
    adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, has_complex=False, beta1=beta1, beta2=beta2,
         lr=lr, weight_decay=weight_decay, eps=eps, maximize=False, foreach=foreach, capturable=False,
         differentiable=False, fused=None, grad_scale=None, found_inf=None, decoupled_weight_decay=True)


def reproduces_torch(module: Any) -> bool:
    """Whether ``module``'s step gives torch's weights and moments bit for bit: three steps of an
    odd-sized tensor whose gradient comes in two pieces, with both of torch's forms of ``lerp``
    (``1 - beta1`` below and above 0.5) and gradients of three magnitudes."""
    gen = torch.Generator().manual_seed(0)
    n = 3 * 2048 + 37
    start = torch.randn(n, generator=gen)
    for beta1 in (0.9, 0.3):
        ours = [start.clone(), torch.zeros(n), torch.zeros(n), torch.tensor(0.0)]
        theirs = [start.clone(), torch.zeros(n), torch.zeros(n), torch.tensor(0.0)]
        for scale in (1e-3, 1.0, 1e3):
            grad = torch.randn(n, generator=gen) * scale
            kw = dict(lr=1e-3, beta1=beta1, beta2=0.99, weight_decay=0.1, eps=1e-8)
            adamw_step(module, ours[0], [grad[:1000], grad[1000:]], ours[1], ours[2], ours[3], **kw)
            torch_adamw([theirs[0]], [grad], [theirs[1]], [theirs[2]], [theirs[3]], foreach=False, **kw)
        if not all(torch.equal(a, b) for a, b in zip(ours, theirs)):
            return False
    return True
