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
    """Memory a new allocation can use: free GPU memory on CUDA; on the CPU the least of the
    machine's ``MemAvailable``, what this process's address-space limit (``ulimit -v``,
    ``RLIMIT_AS``) leaves and what its cgroup's ``memory.max`` leaves. None when none is known
    (the check is then skipped)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    known = [n for n in (_mem_available(), _address_space_left(), _cgroup_left()) if n is not None]
    return min(known) if known else None


def _read_number(path: str, key: str | None = None) -> int | None:
    """A number from a /proc or /sys file: the whole file, or the line starting with ``key``
    (in kB, as /proc writes it); None when absent or unlimited ('max')."""
    try:
        with open(path) as f:
            for line in f:
                if key is None:
                    return None if line.strip() == "max" else int(line)
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _mem_available() -> int | None:
    found = _read_number("/proc/meminfo", "MemAvailable:")
    if found is not None:
        return found
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else -1
    return pages * os.sysconf("SC_PAGE_SIZE") if pages and pages > 0 else None


def _address_space_left() -> int | None:
    """What ``RLIMIT_AS`` leaves this process: the limit less the address space it already maps."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(0, soft - (_read_number("/proc/self/status", "VmSize:") or 0))


def _cgroup_left() -> int | None:
    """What this process's memory cgroup allows beyond what it already uses (cgroup v2's
    ``memory.max``, or v1's ``memory.limit_in_bytes``, whose 'no limit' is a huge number)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.strip().split(":", 2) for line in f]
    except OSError:
        return None
    for _, controllers, group in (parts for parts in lines if len(parts) == 3):
        if controllers == "":  # v2: one unified hierarchy
            folder, limit_file, usage_file = "/sys/fs/cgroup" + group.rstrip("/"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # v1: the memory controller's own hierarchy
            folder = "/sys/fs/cgroup/memory" + group.rstrip("/")
            limit_file, usage_file = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        limit = _read_number(f"{folder}/{limit_file}")
        if limit is not None and limit < 2**60:  # v1 writes 'no limit' as ~2**63
            return max(0, limit - (_read_number(f"{folder}/{usage_file}") or 0))
    return None


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
