"""Honest measurements shared by the benchmarks and the lab: interleaved timing, peak memory.

Timing: every candidate runs once per round, rounds repeat, and the median per candidate is
reported, so a slow phase of the machine (another process, frequency scaling) hits all
candidates alike instead of whichever happened to run then.

Peak memory: CPU tensors have no ``max_memory_allocated`` counter, and the process RSS hides
allocations behind the C allocator's caching. We run the function once under
``torch.profiler.profile(profile_memory=True)``, which records every allocation and free made by
PyTorch's CPU allocator with a timestamp and a signed size; replaying them in time order gives
the live bytes at every instant, and the peak is their maximum *above the level at the start*
(tensors alive before the call, such as parameters and inputs, are not counted). On a GPU the
CUDA allocator's own peak counter does the same job.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_memory_bytes", "peak_cuda_memory_bytes", "peak_bytes", "time_interleaved", "median"]


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's start/stop lines, which its C++ side writes straight to fd 2."""
    try:
        saved = os.dup(2)
    except OSError:  # no real fd 2 (e.g. some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by PyTorch's CPU allocator while ``fn()`` runs (above the start level)."""
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.__enter__()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    results: Any = prof.profiler.kineto_results  # type: ignore[union-attr]
    events = [e for e in results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()  # positive for an allocation, negative for a free
        peak = max(peak, live)
    return peak


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
    device: torch.device | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in interleaved rounds (``repeats`` samples each).

    ``setup()``, if given, runs untimed before every call (e.g. to drop the previous gradients).
    On a CUDA ``device`` the clock stops only when the GPU has finished the call's work.
    """
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for fn in fns.values():
            if setup is not None:
                setup()
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if setup is not None:
                setup()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - t0)
    return samples


def peak_cuda_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes the CUDA caching allocator held for tensors while ``fn()`` ran (above the start)."""
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """:func:`peak_cuda_memory_bytes` on a GPU, :func:`peak_memory_bytes` on the CPU."""
    return peak_cuda_memory_bytes(fn, device) if device.type == "cuda" else peak_memory_bytes(fn)


def median(xs: list[float]) -> float:
    return statistics.median(xs)

