"""The C allocator and big tensors: keep freed memory for reuse instead of giving it back.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every block over a
threshold (128 KiB to 32 MiB, adjusted as it goes) with a fresh ``mmap`` and returns it to the
system on ``free``, so a training step that allocates the same big tensors every time (the
default GPT's logits and their gradient are 4,096 x 6,187 floats, 97 MiB each) pays the kernel to
map and zero every page again, every step. Measured on a 2-vCPU Xeon: ``torch.zeros`` of that
size took 21 ms instead of 2.7, ``exp`` 27 ms instead of 7.5, and a default-GPT training step
330 ms instead of 241 (``python -c`` A/B in one process; the README's "Training speed against
nanoGPT"). Intel's PyTorch CPU guide recommends jemalloc or tcmalloc for the same reason.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve big blocks from its heap and to keep
up to 1 GiB of freed memory at the heap's top instead of trimming it. It changes no result,
only speed. The cost is memory: the process keeps its peak mapped until it exits, and blocks of
changing sizes (padded batches of different lengths) fragment the heap, so README command 1
peaked at 3.2 GiB of resident memory instead of 1.7. So by default it applies only on a machine
with at least :data:`MIN_MEMORY` of RAM. The ``attnlab`` command line calls it once, before a
command starts work; in a notebook, call it yourself. ``ATTNLAB_MALLOC=keep`` applies it
whatever the RAM, ``ATTNLAB_MALLOC=system`` never. Elsewhere than glibc (macOS, Windows, musl) it
does nothing.

This module imports no torch.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

from attnlab.errors import AttnlabError

__all__ = ["MALLOC_ENV", "MIN_MEMORY", "keep_freed_memory", "note"]

MALLOC_ENV = "ATTNLAB_MALLOC"  # "auto" (the default), "keep" or "system" (glibc's own policy)
MIN_MEMORY = 8 << 30  # RAM below which "auto" leaves glibc's defaults (the kept memory could crowd it)
KEEP_BYTES = 1 << 30  # freed memory at the heap's top that glibc keeps instead of trimming
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameter numbers (malloc.h)
_applied = False


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Make glibc keep freed big blocks for reuse (see the module docstring); True when it did.

    False under ``ATTNLAB_MALLOC=system``, where the C library is not glibc, and by default
    (``auto``) on a machine with less than :data:`MIN_MEMORY` of RAM. Any other value of
    ``ATTNLAB_MALLOC`` than ``auto``, ``keep`` or ``system`` is an error."""
    global _applied
    choice = environ.get(MALLOC_ENV, "auto").strip().lower()
    if choice not in ("auto", "keep", "system"):
        raise AttnlabError(f"{MALLOC_ENV}={environ[MALLOC_ENV]!r} is not a choice; use {MALLOC_ENV}=auto (the "
                           f"default: freed memory is kept for reuse on a machine with 8 GiB of RAM or more), "
                           f"{MALLOC_ENV}=keep (always) or {MALLOC_ENV}=system (glibc's own policy)")
    if choice == "system" or not _is_glibc() or (choice == "auto" and _ram() < MIN_MEMORY):
        return False
    libc = ctypes.CDLL(None)
    _applied = bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(_M_MMAP_MAX, 0))
    return _applied


def note() -> str | None:
    """One line for a training log when :func:`keep_freed_memory` took effect in this process."""
    if not _applied:
        return None
    return f"freed memory is kept for reuse (glibc mallopt; {MALLOC_ENV}=system leaves glibc's defaults)"


def _ram() -> int:
    """Bytes of physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False
