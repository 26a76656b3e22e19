"""CPU threads: the one policy for how many intra-op threads attnlab's work uses, and how they wait.

PyTorch runs one intra-op worker per core, and its OpenMP workers spin at every barrier. When
another process holds one of the cores, every parallel operation waits for the worker that is
off its core, and the spinning one burns the other core's time slice meanwhile: beside busy
neighbours the toy and the IMDB ``ffnn`` ran 30x and 49x slower than alone (the README's "A
shared CPU" has the measurements). So:

* :func:`choose_threads`: one thread per core, or one thread for models too small to gain from a
  second, and ``ATTNLAB_THREADS`` (or the caller's ``override``) above all. The default never
  looks at the load: the thread count changes the last bits of a run's numbers (a reduction split
  in two sums differently), so a choice that followed the load would make the same command print
  different results on a busy and a quiet machine. ``ATTNLAB_THREADS=auto`` opts in to the cores
  the load average leaves free (faster beside busy neighbours; the results then depend on the
  load), and a busy machine's training log says so;
* :func:`openmp_environment`: ``OMP_WAIT_POLICY=PASSIVE`` (a worker sleeps at a barrier instead
  of spinning) when other processes are using the CPU as attnlab starts (:func:`busy_cores`).
  OpenMP reads it once, when torch loads, so the ``attnlab`` command line sets it then, through
  an import hook (:func:`wait_policy_when_torch_loads`): commands that answer without torch skip
  the look. It changes no result, only speed;
* :func:`apply_threads` sets the choice (``torch.set_num_threads``) and returns it with its
  reason, for the training log;
* :class:`StallWatch`, the one exception to "never the load": decoding steps that stall beside a
  busy process move to one thread (a decoding step is too small to survive the stalls: 7-45x
  slower), unless ``ATTNLAB_THREADS`` names a count. Training never does this;
* :class:`NeighbourNotice`: training's side. Other work that uses the CPU while a run's workers
  spin (a process that started later) stalls them, and the run cannot change how they wait; one
  warning says so and gives the way out.

This module imports no torch at import time (the command line calls it before torch starts).
"""

from __future__ import annotations

import importlib.abc
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from attnlab.errors import AttnlabError

__all__ = ["THREADS_ENV", "SMALL_MODEL_PARAMS", "ThreadChoice", "choose_threads", "apply_threads", "StallWatch",
           "NeighbourNotice", "NEIGHBOUR_WARNING", "openmp_environment", "wait_policy_when_torch_loads",
           "workers_sleep", "busy_cores"]

THREADS_ENV = "ATTNLAB_THREADS"  # a number of intra-op threads that overrides the policy, or auto (follow the load)
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
                   override: int | None = None, adapt: bool = False) -> ThreadChoice:
    """The intra-op thread count on ``cores`` cores at a 1-minute load average of ``load`` (None:
    unknown), for a model of ``params`` trainable parameters (None: unknown).

    ``override`` wins. A model under :data:`SMALL_MODEL_PARAMS` gets one thread. Otherwise one per
    core, unless ``adapt`` (``ATTNLAB_THREADS=auto``): then the cores the load leaves free, rounded
    to the nearest, at least one (a load of 1 on 2 cores gives 1 thread, 0.3 gives 2). Without
    ``adapt`` a load that holds a core only adds advice to the reason.
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
    free = min(cores, max(1, math.floor(cores - load + 0.5)))
    if free == cores or load < 0.5:
        return ThreadChoice(cores, f"one per core (load average {load:.2f} leaves the {cores} cores free)")
    if adapt:
        return ThreadChoice(free, f"load average {load:.2f} on {cores} cores ({THREADS_ENV}=auto): other work "
                                  "holds the rest, and a worker waiting for a busy core would stall the others")
    return ThreadChoice(cores, f"one per core, though the load average {load:.2f} says other work holds "
                               f"{cores - free} of the {cores}; {THREADS_ENV}=auto (or ={free}) would use the free "
                               "ones (faster beside busy neighbours; the last digits of the results change)")


def _env_threads(environ: Mapping[str, str]) -> int | str | None:
    value = environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if value.lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise AttnlabError(f"{THREADS_ENV}={value!r} is not a number; set it to a thread count such as 1, "
                           "to auto (follow the load average), or unset it for one thread per core") from None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        return None


_CORES: int | None = None  # torch's own thread count at the first call: one per core, or OMP_NUM_THREADS


def apply_threads(params: int | None = None, *, override: int | None = None,
                  environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """Choose the intra-op threads (:func:`choose_threads` from ``override``, else ``ATTNLAB_THREADS``
    (a number, or ``auto`` to follow the load average), else ``params``) and set them with
    ``torch.set_num_threads``."""
    import torch

    global _CORES
    if _CORES is None:
        _CORES = torch.get_num_threads()
    env = os.environ if environ is None else environ
    asked = override if override is not None else _env_threads(env)
    adapt = asked == "auto"
    choice = choose_threads(cores=_CORES, load=_load_average(), params=params,
                            override=None if adapt or asked is None else int(asked), adapt=adapt)
    torch.set_num_threads(choice.threads)
    if workers_sleep(env):
        choice = ThreadChoice(choice.threads, f"{choice.reason}; workers sleep at barriers (OMP_WAIT_POLICY=PASSIVE: "
                                              "other work was using the CPU)")
    return choice


def workers_sleep(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` makes OpenMP's workers sleep at barriers (``OMP_WAIT_POLICY=PASSIVE``)
    instead of spinning."""
    return environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def openmp_environment(environ: Mapping[str, str], *, busy: float | None | bool = True) -> dict[str, str]:
    """What to add to ``environ`` before torch is imported: ``OMP_WAIT_POLICY=PASSIVE`` when other
    processes keep at least half a core busy, else nothing (workers spin at barriers: twice as
    fast when the cores are free), and nothing when the user set the wait policy (or
    ``GOMP_SPINCOUNT``, which tunes the same wait).

    ``busy`` is the number of cores other work keeps busy (None: unknown); ``True`` measures it
    (:func:`busy_cores`). Measured, on 2 cores: `char-cpu` trained at 45.7 steps/s spinning and
    22.8 passive when alone, but at 3.2-6.7 spinning and 18.6-24.0 passive beside one busy
    process. The wait policy changes no result, only how long the workers take to notice work.
    """
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    if busy is True:
        busy = busy_cores()
    if busy is None or busy is False or busy < 0.5:
        return {}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


class _WhenTorchLoads(importlib.abc.MetaPathFinder):
    """An import hook that applies :func:`openmp_environment` to ``environ`` at the first
    ``import torch`` (before OpenMP reads it), then steps aside; it finds no module itself."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self.environ = environ

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> None:
        if name == "torch" and self in sys.meta_path:
            sys.meta_path.remove(self)
            self.environ.update(openmp_environment(self.environ))
        return None


def wait_policy_when_torch_loads(environ: MutableMapping[str, str] = os.environ) -> None:
    """Choose OpenMP's wait policy (:func:`openmp_environment`) when torch is first imported, not
    now: the look at the other processes sleeps 0.15 s on a machine that is not quiet, which
    ``--print-config``, ``--list-presets`` and a refused ``--set`` (they import no torch) need not
    pay. Does nothing once torch is loaded (its OpenMP has read the policy)."""
    if "torch" not in sys.modules and not any(isinstance(f, _WhenTorchLoads) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenTorchLoads(environ))


def busy_cores(window: float = 0.15) -> float | None:
    """Cores other processes keep busy right now: the machine's non-idle share of CPU time over
    ``window`` seconds (this process sleeps through it), times the cores; None where there is
    no ``/proc/stat``. On a quiet machine (1-minute load average under 0.5) it answers 0 at once."""
    load = _load_average()
    if load is not None and load < 0.5:
        return 0.0

    try:
        total0, idle0 = _cpu_ticks()
        time.sleep(window)
        total1, idle1 = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    return (1.0 - (idle1 - idle0) / total) * (os.cpu_count() or 1)


def _cpu_ticks(cpus: frozenset[int] | None = None, stat: str = "/proc/stat") -> tuple[int, int]:
    """CPU time so far from ``/proc/stat``, in clock ticks: (all, idle), of the whole machine or of
    the ``cpus`` listed."""
    with open(stat) as f:
        lines = [line.split() for line in f if line.startswith("cpu")]
    rows = [lines[0]] if cpus is None else [r for r in lines[1:] if int(r[0][3:]) in cpus]
    all_ticks = idle = 0
    for row in rows:
        ticks = [int(x) for x in row[1:9]]  # user nice system idle iowait irq softirq steal
        all_ticks, idle = all_ticks + sum(ticks), idle + ticks[3] + ticks[4]
    return all_ticks, idle


def _own_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on, when that is fewer than the machine's (``taskset``, a
    cpuset): other work elsewhere cannot stall it. None: all of them, or unknown."""
    try:
        cpus = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return cpus if len(cpus) < (os.cpu_count() or len(cpus)) else None


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU-seconds of this process's CPUs, CPU-seconds of this process) now;
    None where there is no ``/proc/stat``. Two samples tell how much CPU other work used between them."""
    try:
        total, idle = _cpu_ticks(_own_cpus())
    except (OSError, ValueError, IndexError):
        return None
    return time.monotonic(), (total - idle) / _TICKS_PER_SECOND, time.process_time()


def _others_cores(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores that work other than this process kept busy, on average, between two CPU samples
    (the host's steal time included)."""
    wall = after[0] - before[0]
    if wall <= 0:
        return 0.0
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


T = TypeVar("T")
STALL_FACTOR = 4.0  # a step this many times slower than the fastest one so far (and 1 ms slower) has stalled
STALLS = 2  # stalled steps, each within STALL_WINDOW steps of the one before, that switch to one thread
STALL_WINDOW = 16  # a neighbour stalls step after step; on an idle machine a stall is a lone hiccup
# (a preemption, a garbage collection; README, "A shared CPU")
RECENT = 30.0  # seconds after a switch during which new runs start on one thread
CHECK_AFTER = 0.25  # seconds on one thread between looks at whether the other work is still there
GONE = 0.5  # cores of other work below which the run goes back to all the threads
_last_switch = -math.inf  # time.monotonic() of this process's last switch to one thread
_mark: tuple[float, float, float] | None = None  # the CPU sample the next look compares with
_announced = True  # whether the last switch to one thread has been announced (False until a look sees the other work)
try:
    _TICKS_PER_SECOND = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _TICKS_PER_SECOND = 100.0


class StallWatch:
    """Runs a sequence of small, alike steps (decoding), on one thread while other work would stall them.

    A decoding step is many tiny parallel regions, each a barrier for all the threads. When another
    process holds a core, the thread that lost it makes every barrier wait for the scheduler to give
    it back (milliseconds, for a step of a fraction of one): beside one busy process, 256 words of
    the default GPT took 7 to 45 times longer. After :data:`STALLS` steps slower than
    ``STALL_FACTOR`` times the fastest (and 1 ms slower), each within :data:`STALL_WINDOW` steps of
    the one before, steps run on one thread, which a neighbour cannot stall; the thread count is
    restored after each. Every :data:`CHECK_AFTER` seconds on one thread, the CPU time of the
    machine (of this process's CPUs, under ``taskset`` or a cpuset) from ``/proc/stat``, less this
    process's own, says whether other work still keeps :data:`GONE` of a core busy; if not (the
    neighbour left, or the stalls were one passing hiccup, such as the host taking a virtual CPU
    away for a moment), the run goes back to all the threads. The warning that names the switch
    waits for the first look to see the other work, so a hiccup passes in silence (without
    ``/proc/stat`` it comes at once). A run that starts within :data:`RECENT` seconds of a switch
    (or of a look that still saw the neighbour) starts on one thread and looks the same way. It
    stays as it is when ``ATTNLAB_THREADS`` names a count (one thread can change the last digits
    of a row's logits), or when there is one thread already.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.enabled = not isinstance(_env_threads(os.environ if environ is None else environ), int)
        self.best = math.inf  # the fastest step so far, seconds
        self.stalls = 0  # stalls in the current chain, each within STALL_WINDOW steps of the one before
        self.steps = 0  # steps observed
        self.last_stall = -STALL_WINDOW - 1  # the step that stalled last
        self.one_thread = self.enabled and time.monotonic() - _last_switch < RECENT

    def run(self, step: Callable[[], T], *, observe: bool = True) -> T:
        """``step()``, on one thread once the steps have stalled; ``observe=False`` for work that is not
        one of the alike steps (a prompt's forward): it follows the switch but is not timed."""
        import torch

        if self.one_thread:
            self._look()
        if self.one_thread:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return step()
            finally:
                torch.set_num_threads(threads)
        start = time.perf_counter()
        out = step()
        if observe:
            self.observe(time.perf_counter() - start)
        return out

    def observe(self, seconds: float) -> None:
        """Count ``seconds`` (a step's time) as a stall or not; after enough, switch to one thread."""
        self.steps += 1
        if seconds > max(STALL_FACTOR * self.best, self.best + 1e-3):
            import torch

            self.stalls = self.stalls + 1 if self.steps - self.last_stall <= STALL_WINDOW else 1
            self.last_stall = self.steps
            if self.enabled and self.stalls >= STALLS and torch.get_num_threads() > 1:
                global _last_switch, _mark, _announced
                self.one_thread, _last_switch, _mark = True, time.monotonic(), _cpu_sample()
                _announced = _mark is None  # said when a look sees the other work (without looks: now)
                if _announced:
                    _warn_stalled()
        self.best = min(self.best, seconds)

    def _look(self) -> None:
        """On one thread: after :data:`CHECK_AFTER` seconds, back to all the threads if the other work left."""
        global _last_switch, _mark, _announced
        if _mark is None or time.monotonic() - _mark[0] < CHECK_AFTER:
            return  # no /proc/stat (the run stays on one thread), or too soon to tell
        now = _cpu_sample()
        if now is None:
            return
        if now[0] - _mark[0] > 2 * CHECK_AFTER:  # an old sample (a run that started after a pause):
            _mark = now  # its average would dilute a neighbour that came since; decide at the next look
            return
        if _others_cores(_mark, now) < GONE:  # gone, or never there (a hiccup: then nothing was said)
            self.one_thread, self.stalls, _last_switch = False, 0, -math.inf
        else:
            _last_switch = now[0]  # still there: runs that start soon start on one thread
            if not _announced:  # once per switch
                _warn_stalled()
                _announced = True
        _mark = now


def _warn_stalled() -> None:
    warnings.warn("decoding steps stalled (another process is using a core); this generation runs on one thread "
                  f"until it leaves ({THREADS_ENV}=N keeps N threads)", stacklevel=4)


NEIGHBOUR_WARNING = "warning: other work keeps about"  # how NeighbourNotice's warning starts (tools look for it)
LOOK_EVERY = 1.0  # seconds between a training run's looks at the CPU
BUSY_LOOKS = 3  # looks in a row that see other work before a training run says so


class NeighbourNotice:
    """One warning when other work uses the CPU while a training run's workers spin.

    The command line chooses the OpenMP wait policy once, before torch loads
    (:func:`openmp_environment`): on a free machine the workers spin at barriers, which is twice as
    fast there. Beside a busy process that comes later (or that Python code did not look for),
    every barrier waits for the worker that lost its core, and a small model trains many times
    slower (README, "A shared CPU", has the measurements). A training run cannot undo that: OpenMP reads its wait policy
    once, and fewer threads would change the run's numbers. So every :data:`LOOK_EVERY` seconds
    :meth:`observe` compares the CPU time of the machine (``/proc/stat``) with this process's, and
    when :data:`BUSY_LOOKS` looks in a row find other work keeping :data:`GONE` of a core busy, it
    returns the warning, with the way out, once. It stays silent with one thread, when the workers
    already sleep (``OMP_WAIT_POLICY=PASSIVE``) and where there is no ``/proc/stat``.
    """

    def __init__(self, threads: int, environ: Mapping[str, str] | None = None) -> None:
        self.threads = threads
        self.enabled = threads > 1 and not workers_sleep(os.environ if environ is None else environ)
        self.best = math.inf  # the fastest step so far, seconds
        self.busy_looks = 0  # looks in a row that saw other work
        self.mark: tuple[float, float, float] | None = None  # the last look's CPU sample

    def observe(self, seconds: float) -> str | None:
        """Count one training step of ``seconds``; the warning, the first time other work stays."""
        if not self.enabled:
            return None
        self.best = min(self.best, seconds)
        if self.mark is not None and time.monotonic() - self.mark[0] < LOOK_EVERY:
            return None
        now = _cpu_sample()
        if now is None:  # no /proc/stat: nothing to tell with
            self.enabled = False
            return None
        others = 0.0 if self.mark is None else _others_cores(self.mark, now)
        self.busy_looks = self.busy_looks + 1 if others >= GONE else 0
        self.mark = now
        if self.busy_looks < BUSY_LOOKS:
            return None
        self.enabled = False
        return (f"{NEIGHBOUR_WARNING} {others:.1f} cores of this CPU busy while this run's "
                f"{self.threads} worker threads spin at every barrier, so its steps stall (this one "
                f"{seconds * 1e3:,.0f} ms, the fastest {self.best * 1e3:,.0f} ms). If that work stays, train at the "
                "CPU share it leaves: Ctrl-C, then run the same command with --resume (attnlab sees the busy CPU "
                "as it starts and lets the workers sleep: OMP_WAIT_POLICY=PASSIVE, the same numbers); from Python, set "
                f"OMP_WAIT_POLICY=PASSIVE before torch is imported, or {THREADS_ENV}=1 (the last digits change)")
