"""CPU threads: the one policy for how many intra-op threads attnlab's work uses, and how they wait.

PyTorch runs one intra-op worker per core, and its OpenMP workers spin at every barrier. When
another process holds one of the cores, every parallel operation waits for the worker that is
off its core, and the spinning one burns the other core's time slice meanwhile: beside busy
neighbours the toy and the IMDB ``ffnn`` ran 30x and 49x slower than alone (the README's "A
shared CPU" has the measurements). So:

* :func:`choose_threads`: all cores on a quiet machine (the results are the same as before), the
  cores the load average leaves free when other work holds some, one thread for models too
  small to gain from a second, and ``ATTNLAB_THREADS`` (or the caller's ``override``) above all;
* :func:`openmp_environment`: ``OMP_WAIT_POLICY=PASSIVE`` (a worker sleeps at a barrier instead
  of spinning). OpenMP reads it once, when torch loads, so the ``attnlab`` command line sets it
  before it imports torch (which it does only when work starts);
* :func:`apply_threads` sets the choice (``torch.set_num_threads``) and returns it with its
  reason, for the training log.

This module imports no torch at import time (the command line calls it before torch starts).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from attnlab.errors import AttnlabError

__all__ = ["THREADS_ENV", "SMALL_MODEL_PARAMS", "ThreadChoice", "choose_threads", "apply_threads",
           "openmp_environment"]

THREADS_ENV = "ATTNLAB_THREADS"  # a number of intra-op threads that overrides the policy
SMALL_MODEL_PARAMS = 20_000  # trainable parameters below which a second thread only adds synchronisation


@dataclass(frozen=True)
class ThreadChoice:
    """How many intra-op threads to use, and why."""

    threads: int
    reason: str

    def note(self) -> str:
        """``1 CPU thread: load average 1.20 on 2 cores: ...``, for the training log."""
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}: {self.reason}"


def choose_threads(*, cores: int, load: float | None, params: int | None = None,
                   override: int | None = None) -> ThreadChoice:
    """The intra-op thread count on ``cores`` cores at a 1-minute load average of ``load`` (None:
    unknown), for a model of ``params`` trainable parameters (None: unknown).

    ``override`` wins. A model under :data:`SMALL_MODEL_PARAMS` gets one thread. Otherwise every
    core while the load is under half a core, else the cores the load leaves free, rounded to the
    nearest, at least one: a load of 1 on 2 cores gives 1 thread, a load of 0.3 gives 2.
    """
    if override is not None:
        if override < 1:
            raise AttnlabError(f"the thread count must be >= 1, got {override}; set {THREADS_ENV} (or "
                               "--threads) to a positive number, or unset it for the automatic choice")
        return ThreadChoice(override, f"asked for ({THREADS_ENV} or --threads)")
    cores = max(1, cores)
    if params is not None and params < SMALL_MODEL_PARAMS:
        return ThreadChoice(1, f"a model of {params:,} parameters is too small to gain from a second thread")
    if load is None:
        return ThreadChoice(cores, "one per core (this system has no load average)")
    if load < 0.5:
        return ThreadChoice(cores, f"one per core (load average {load:.2f}: the cores are free)")
    threads = min(cores, max(1, math.floor(cores - load + 0.5)))
    if threads == cores:
        return ThreadChoice(cores, f"one per core (load average {load:.2f} leaves the {cores} cores free)")
    return ThreadChoice(threads, f"load average {load:.2f} on {cores} cores: other work holds the rest, "
                                 "and a worker waiting for a busy core would stall the others")


def _env_threads(environ: Mapping[str, str]) -> int | None:
    value = environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise AttnlabError(f"{THREADS_ENV}={value!r} is not a number; set it to a thread count such as 1, "
                           "or unset it for the automatic choice") from None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        return None


_CORES: int | None = None  # torch's own thread count at the first call: one per core, or OMP_NUM_THREADS


def apply_threads(params: int | None = None, *, override: int | None = None,
                  environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """Choose the intra-op threads (:func:`choose_threads` from ``override``, else ``ATTNLAB_THREADS``,
    else the load average and ``params``) and set them with ``torch.set_num_threads``."""
    import torch

    global _CORES
    if _CORES is None:
        _CORES = torch.get_num_threads()
    if override is None:
        override = _env_threads(os.environ if environ is None else environ)
    choice = choose_threads(cores=_CORES, load=_load_average(), params=params, override=override)
    torch.set_num_threads(choice.threads)
    return choice


def openmp_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What to add to ``environ`` before torch is imported: ``OMP_WAIT_POLICY=PASSIVE``, unless the
    wait policy (or ``GOMP_SPINCOUNT``, which tunes the same wait) is set already."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    return {"OMP_WAIT_POLICY": "PASSIVE"}
