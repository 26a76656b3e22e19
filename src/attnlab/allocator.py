"""The C allocator and big tensors: keep freed memory for reuse instead of giving it back.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every block over a
threshold (128 KiB to 32 MiB, adjusted as it goes) with a fresh ``mmap`` and returns it to the
system on ``free``, so a training step that allocates the same big tensors every time (the
default GPT's logits and their gradient are 4,096 x 6,187 floats, 97 MiB each, for 16 windows)
pays the kernel to map and zero every page again, every step. Measured on a 2-vCPU Xeon:
``torch.zeros`` of that size took 21 ms instead of 2.7, ``exp`` 27 ms instead of 7.5, and a
default-GPT training step 330 ms instead of 241 (``python -c`` A/B in one process; the README's
"Speed against the references"). Intel's PyTorch CPU guide recommends jemalloc or tcmalloc for
the same reason.

:func:`keep_freed_memory` does two things, neither of which changes a result:

* it asks glibc (``mallopt``) to serve big blocks from its heap and to keep up to 1 GiB of freed
  memory at the heap's top instead of trimming it;
* before torch is imported, it sets ``THP_MEM_ALLOC_ENABLE=1`` (unless the environment sets it),
  PyTorch's own switch that puts blocks of 2 MiB and more on transparent huge pages. Alone it
  gained less (1.15x on the step above against 1.33x), but with the kept heap it cut README
  command 1's peak resident memory from 3.2 GiB to 1.9-2.2 (glibc's defaults: 1.7) at about the
  same speed (97-102 s of training against 121).

The cost is memory: the process keeps its peak mapped until it exits, and blocks of changing
sizes (padded batches of different lengths) fragment the heap. So by default it applies only on
a machine with at least :data:`MIN_MEMORY` of RAM. The ``attnlab`` command line calls it once,
before a command starts work (and before torch loads); in a notebook, call it before importing
torch. ``ATTNLAB_MALLOC=keep`` applies it whatever the RAM, ``ATTNLAB_MALLOC=system`` never.
Elsewhere than glibc (macOS, Windows, musl) it does nothing.

This module imports no torch.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

from attnlab.errors import AttnlabError

__all__ = ["MALLOC_ENV", "MIN_MEMORY", "HUGE_PAGES_ENV", "keep_freed_memory", "without_policy", "note"]

MALLOC_ENV = "ATTNLAB_MALLOC"  # "auto" (the default), "keep" or "system" (glibc's own policy)
MIN_MEMORY = 8 << 30  # RAM below which "auto" leaves glibc's defaults (the kept memory could crowd it)
KEEP_BYTES = 1 << 30  # freed memory at the heap's top that glibc keeps instead of trimming
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameter numbers (malloc.h)
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"  # PyTorch (c10) reads it at its first allocation
_applied = False
_set_huge_pages = False  # whether keep_freed_memory set HUGE_PAGES_ENV


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Make glibc keep freed big blocks for reuse (see the module docstring); True when it did.

    False under ``ATTNLAB_MALLOC=system``, where the C library is not glibc, and by default
    (``auto``) on a machine with less than :data:`MIN_MEMORY` of RAM. Any other value of
    ``ATTNLAB_MALLOC`` than ``auto``, ``keep`` or ``system`` is an error."""
    global _applied, _set_huge_pages
    choice = environ.get(MALLOC_ENV, "").strip().lower() or "auto"  # set but empty: the default, as the others read it
    if choice not in ("auto", "keep", "system"):
        raise AttnlabError(f"{MALLOC_ENV}={environ[MALLOC_ENV]!r} is not a choice; use {MALLOC_ENV}=auto (the "
                           f"default: freed memory is kept for reuse on a machine with 8 GiB of RAM or more), "
                           f"{MALLOC_ENV}=keep (always) or {MALLOC_ENV}=system (glibc's own policy)")
    if choice == "system" or not _is_glibc() or (choice == "auto" and _ram() < MIN_MEMORY):
        return False
    libc = ctypes.CDLL(None)
    _applied = bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(_M_MMAP_MAX, 0))
    if _applied and "torch" not in sys.modules and HUGE_PAGES_ENV not in os.environ:
        os.environ[HUGE_PAGES_ENV] = "1"  # (once torch is loaded, PyTorch has read its switch already)
        _set_huge_pages = True
    return _applied


def without_policy(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less what :func:`keep_freed_memory` added to this process's environment: for a
    child process that must run with the system's policy (``attnlab bench nanogpt``'s other side)."""
    return {k: v for k, v in environ.items() if not (_set_huge_pages and k == HUGE_PAGES_ENV)}


def note() -> str | None:
    """One line for a training log when :func:`keep_freed_memory` took effect in this process."""
    if not _applied:
        return None
    pages = ", big tensors on huge pages" if os.environ.get(HUGE_PAGES_ENV) == "1" else ""
    return f"freed memory is kept for reuse{pages} (glibc mallopt; {MALLOC_ENV}=system leaves glibc's defaults)"


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
