"""Will it fit? Estimates of the memory a configuration needs, checked before anything is built.

A typo such as ``model.max_len=100000`` or ``model.dim=1000000`` should end in one clear line
with the number and the fix, not in a ``MemoryError`` traceback minutes later (or the machine
swapping). The estimates are rough on purpose (within a small factor): they only have to tell
a configuration that fits from one that is hopeless.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from attnlab.errors import AttnlabError

__all__ = ["available_bytes", "require", "training_bytes", "count_parameters", "gib"]

BYTES_PER_TRAINED_PARAMETER = 16  # fp32 weight + gradient + AdamW's two moments


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a new allocation can use: free GPU memory on CUDA, ``MemAvailable`` on Linux; None
    when unknown (the check is then skipped)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else -1
    return pages * os.sysconf("SC_PAGE_SIZE") if pages and pages > 0 else None


def require(nbytes: float, *, what: str, fix: str, device: torch.device | str = "cpu") -> None:
    """Raise :class:`AttnlabError` when ``nbytes`` is more than ``device`` has available."""
    have = available_bytes(device)
    if have is not None and nbytes > have:
        raise AttnlabError(f"{what} needs about {gib(nbytes)}, but {gib(have)} are available on {device}; {fix}")


def training_bytes(build: Callable[[], nn.Module]) -> int:
    """Bytes the parameters, gradients and optimizer state of ``build()`` take while training
    (frozen parameters: their fp32 weights only), counted on the ``meta`` device (nothing is
    allocated)."""
    with torch.device("meta"):
        model = build()
    trained, frozen = count_parameters(model, trainable=True), count_parameters(model, trainable=False)
    return BYTES_PER_TRAINED_PARAMETER * trained + 4 * frozen


def count_parameters(model: nn.Module, *, trainable: bool | None = None) -> int:
    """The number of parameters of ``model`` (a tied tensor counted once): all of them, or only the
    trained (``trainable=True``) or the frozen ones (``trainable=False``)."""
    return sum(p.numel() for p in model.parameters() if trainable is None or p.requires_grad == trainable)
