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

Load: a timing is only as good as the machine was quiet. :class:`LoadWatch` records the 1-minute
load average before and after a measurement and the threads it ran on; a load above the thread
count means other work shared the cores, and every benchmark and lab figure then says so.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_memory_bytes", "peak_cuda_memory_bytes", "peak_bytes", "time_interleaved", "median",
           "load_average", "LoadWatch"]


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



def load_average() -> float | None:
    """The 1-minute load average: the processes running or waiting for a core (None where the
    system has none, e.g. Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass
class LoadWatch:
    """The load average before and after a measurement, and the CPU threads it ran on.

    ``LoadWatch.start()`` when the measurement begins (after any ``torch.set_num_threads``),
    ``stop()`` when it ends. ``busy`` is true when either load exceeded the thread count: other
    work then competed for the cores and the timings are slower and noisier than the machine's.
    """

    before: float | None
    threads: int
    after: float | None = None

    @classmethod
    def start(cls) -> LoadWatch:
        return cls(before=load_average(), threads=torch.get_num_threads())

    def stop(self) -> LoadWatch:
        self.after = load_average()
        return self

    @property
    def highest(self) -> float | None:
        known = [x for x in (self.before, self.after) if x is not None]
        return max(known) if known else None

    @property
    def busy(self) -> bool:
        return self.highest is not None and self.highest > self.threads

    def record(self) -> dict[str, Any]:
        """The JSON form: ``{"load_before", "load_after", "threads", "busy"}``."""
        return {"load_before": self.before, "load_after": self.after, "threads": self.threads, "busy": self.busy}

    def summary(self) -> str:
        """``load average 0.52 before, 2.10 after; 2 threads``."""
        def fmt(x: float | None) -> str:
            return "unknown" if x is None else f"{x:.2f}"
        return f"load average {fmt(self.before)} before, {fmt(self.after)} after; {self._threads()}"

    def _threads(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}"

    def warning(self) -> str | None:
        """One line saying the machine was busy (None when it was not)."""
        if not self.busy:
            return None
        return (f"warning: the load average ({self.highest:.2f}) exceeded the {self._threads()} this "
                "measurement used: other work shared the CPU, so these timings are slower and noisier "
                "than this machine's; re-run on a quiet machine before quoting them")
