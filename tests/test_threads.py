"""The CPU thread policy (attnlab.threads): its choices for given cores, load and model size, and the override."""

import contextlib
import os
import subprocess
import sys
import warnings

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.threads import SMALL_MODEL_PARAMS, apply_threads, choose_threads, openmp_environment


@pytest.mark.parametrize("cores, load, params, adapt, want", [
    (2, 0.0, 10**6, False, 2),    # quiet: one per core, as torch would
    (2, 1.0, 10**6, False, 2),    # busy, by default: still one per core (results never follow the load) ...
    (2, 5.0, 10**6, False, 2),
    (2, 0.4, 10**6, True, 2),     # ... with ATTNLAB_THREADS=auto: under half a core of other work
    (2, 1.0, 10**6, True, 1),     # one busy neighbour holds a core
    (2, 1.4, 10**6, True, 1),
    (2, 5.0, 10**6, True, 1),     # never below one
    (8, 2.2, 10**6, True, 6),     # the cores left free, rounded
    (8, 2.6, 10**6, True, 5),
    (2, 0.0, SMALL_MODEL_PARAMS - 1, False, 1),  # too small to gain from a second thread, even when quiet
    (2, 0.0, SMALL_MODEL_PARAMS, False, 2),
    (4, None, None, True, 4),     # no load average, no size: one per core
])
def test_choices_for_cores_load_and_model_size(cores, load, params, adapt, want):
    choice = choose_threads(cores=cores, load=load, params=params, adapt=adapt)
    assert choice.threads == want
    assert choice.note().startswith(f"{want} CPU thread{'s' if want > 1 else ''}: ")


def test_a_busy_machine_by_default_keeps_the_threads_and_says_how_to_follow_the_load():
    note = choose_threads(cores=2, load=1.2, params=10**6).note()
    assert note.startswith("2 CPU threads: one per core, though the load average 1.20")
    assert "ATTNLAB_THREADS=auto (or =1)" in note


def test_the_override_wins_and_a_bad_one_is_one_clear_error():
    assert choose_threads(cores=2, load=9.0, params=10, override=2).threads == 2
    with pytest.raises(AttnlabError, match="thread count must be >= 1, got 0"):
        choose_threads(cores=2, load=0.0, override=0)


def test_apply_threads_sets_torch_and_honours_the_environment():
    before = torch.get_num_threads()
    try:
        assert apply_threads(10**6, environ={"ATTNLAB_THREADS": "1"}).threads == 1
        assert torch.get_num_threads() == 1
        assert apply_threads(10, override=2).threads == 2 and torch.get_num_threads() == 2
        assert apply_threads(10, environ={}).threads == 1  # small model, no override
        assert apply_threads(10**6, environ={"ATTNLAB_THREADS": "auto"}).threads >= 1  # follows the load
        with pytest.raises(AttnlabError, match="ATTNLAB_THREADS='two' is not a number"):
            apply_threads(environ={"ATTNLAB_THREADS": "two"})
    finally:
        torch.set_num_threads(before)


def test_openmp_wait_policy_is_passive_only_beside_busy_work_and_never_over_the_users():
    assert openmp_environment({}, busy=1.0) == {"OMP_WAIT_POLICY": "PASSIVE"}  # a neighbour holds a core
    assert openmp_environment({}, busy=0.1) == {}  # free cores: workers spin (twice as fast alone)
    assert openmp_environment({}, busy=None) == {}  # unknown: torch's default
    assert openmp_environment({"OMP_WAIT_POLICY": "ACTIVE"}, busy=2.0) == {}
    assert openmp_environment({"GOMP_SPINCOUNT": "0"}, busy=2.0) == {}


def test_busy_cores_sees_a_busy_process(monkeypatch):
    import subprocess
    import sys

    import attnlab.threads as threads

    monkeypatch.setattr(threads, "_load_average", lambda: 5.0)  # skip the quiet-machine shortcut
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        threads.time.sleep(0.3)
        busy = threads.busy_cores(window=0.3)
    finally:
        spinner.kill()
        spinner.wait()
    if busy is None:
        pytest.skip("no /proc/stat here")
    assert busy >= 0.5, f"a spinning process should keep at least half a core busy, measured {busy:.2f}"
    monkeypatch.setattr(threads, "_load_average", lambda: 0.1)
    assert threads.busy_cores() == 0.0  # a quiet machine answers at once


def test_the_training_note_says_when_workers_sleep():
    before = torch.get_num_threads()
    try:
        note = apply_threads(10**6, environ={"OMP_WAIT_POLICY": "PASSIVE"}).note()
        assert note.endswith("workers sleep at barriers (OMP_WAIT_POLICY=PASSIVE: other work was using the CPU)")
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ StallWatch (decoding beside a busy process)

@pytest.fixture
def two_threads(monkeypatch):
    from attnlab import threads

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "_last_switch", -float("inf"))  # no earlier switch in this process
    monkeypatch.setattr(threads, "_mark", None)
    monkeypatch.setattr(threads, "_cpu_sample", lambda: None)  # no looks at the machine (the `cpu` fixture fakes them)
    yield
    torch.set_num_threads(n)


def test_steps_that_stall_move_to_one_thread_and_restore_it_after_each(two_threads, monkeypatch):
    from attnlab import threads
    from attnlab.threads import STALL_WINDOW, STALLS, StallWatch

    watch = StallWatch({})
    for seconds in (0.0005, 0.0004, 0.0006, 0.0011, 0.0005):  # jitter, no stall (under 4x and +1 ms)
        watch.observe(seconds)
    assert not watch.one_thread and watch.stalls == 0
    for _ in range(3):  # lone hiccups (a preemption, a garbage collection), far apart: no switch
        watch.observe(0.05)
        for _ in range(STALL_WINDOW):
            watch.observe(0.0004)
    assert not watch.one_thread and watch.stalls == 1
    watch.observe(0.05)  # 17 steps after the last: a new chain
    assert watch.stalls == 1
    for _ in range(STALL_WINDOW - 1):  # a stall STALL_WINDOW steps after the one before chains with it
        watch.observe(0.0004)
    with pytest.warns(UserWarning):
        watch.observe(0.05)
    assert watch.one_thread and watch.stalls == STALLS
    watch = StallWatch({})
    monkeypatch.setattr(threads, "_last_switch", -float("inf"))
    watch.observe(0.0004)
    with pytest.warns(UserWarning, match="decoding steps stalled .* runs on one thread"):
        for _ in range(STALLS):
            watch.observe(0.012)  # a scheduler time slice
    assert watch.one_thread
    inside = watch.run(torch.get_num_threads)
    assert inside == 1 and torch.get_num_threads() == 2
    assert StallWatch({}).one_thread  # a run that starts soon after starts on one thread


def test_a_named_thread_count_or_one_thread_is_kept(two_threads, monkeypatch):
    import warnings

    from attnlab import threads

    stall = _stalls
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither says anything
        assert not stall(threads.StallWatch({"ATTNLAB_THREADS": "2"}))  # a count the user named
        torch.set_num_threads(1)
        assert not stall(threads.StallWatch({}))  # one thread already
    torch.set_num_threads(2)
    with pytest.warns(UserWarning):
        assert stall(threads.StallWatch({"ATTNLAB_THREADS": "auto"}))  # auto follows the load: it switches
    monkeypatch.setattr(threads, "_last_switch", threads._last_switch - threads.RECENT - 1)
    assert not threads.StallWatch({}).one_thread  # long after a switch, runs try all the threads again


def test_work_run_unobserved_follows_the_switch_but_is_not_timed(two_threads):
    from attnlab.threads import StallWatch

    watch = StallWatch({})
    assert watch.run(lambda: 7, observe=False) == 7 and watch.best == float("inf")
    watch.run(lambda: None)
    assert watch.best < 1.0


def test_cpu_ticks_reads_the_machine_or_the_listed_cpus(tmp_path):
    from attnlab.threads import _cpu_ticks

    stat = tmp_path / "stat"
    stat.write_text("cpu  10 1 5 100 4 0 2 3 0 0\n"  # user nice system idle iowait irq softirq steal ...
                    "cpu0 6 1 2 40 1 0 1 1 0 0\ncpu1 4 0 3 60 3 0 1 2 0 0\nintr 1 2 3\nctxt 99\n")
    assert _cpu_ticks(stat=str(stat)) == (125, 104)  # all ticks, idle + iowait
    assert _cpu_ticks(frozenset({1}), stat=str(stat)) == (73, 63)
    assert _cpu_ticks(frozenset({0, 1}), stat=str(stat)) == (52 + 73, 41 + 63)


def test_others_cores_is_the_machines_busy_time_less_this_process(monkeypatch):
    """Ticks over SC_CLK_TCK against process_time's seconds: 50 busy ticks at 100 per second in
    0.5 s, of which this process used 0.25 s, is half a core of other work."""
    from attnlab import threads

    ticks, own, wall = [(1000, 800)], [3.0], [10.0]
    monkeypatch.setattr(threads, "_cpu_ticks", lambda cpus=None: ticks[-1])
    monkeypatch.setattr(threads, "_TICKS_PER_SECOND", 100.0)
    monkeypatch.setattr(threads.time, "process_time", lambda: own[-1])
    monkeypatch.setattr(threads.time, "monotonic", lambda: wall[-1])
    before = threads._cpu_sample()
    ticks.append((1100, 850))  # 100 ticks, 50 of them idle: 0.5 CPU-seconds busy
    own.append(3.25)
    wall.append(10.5)
    assert threads._others_cores(before, threads._cpu_sample()) == pytest.approx(0.5)
    own.append(3.6)  # more than the machine's busy time (tick rounding): never below 0
    assert threads._others_cores(before, threads._cpu_sample()) == 0.0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ATTNLAB_SLOW") != "1", reason="slow: set ATTNLAB_SLOW=1 (timing-sensitive)")
def test_others_cores_counts_other_processes_not_this_one():
    import subprocess
    import sys

    from attnlab import threads

    quiet = threads._cpu_sample()
    if quiet is None:
        pytest.skip("no /proc/stat here")
    threads.time.sleep(0.3)
    before = threads._cpu_sample()
    if threads._others_cores(quiet, before) > 0.25:
        pytest.skip("other work is using the CPU: this process's share cannot be told apart")
    end = threads.time.monotonic() + 0.4
    while threads.time.monotonic() < end:  # this process alone keeps a core busy
        pass
    mine = threads._others_cores(before, threads._cpu_sample())
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        threads.time.sleep(0.2)
        start = threads._cpu_sample()
        threads.time.sleep(0.4)
        theirs = threads._others_cores(start, threads._cpu_sample())
    finally:
        spinner.kill()
        spinner.wait()
    assert mine < threads.GONE, f"this process's own work counted as other work: {mine:.2f} cores"
    assert theirs >= threads.GONE, f"a spinning process should count as other work, measured {theirs:.2f} cores"


@pytest.fixture
def cpu(monkeypatch):
    """A fake clock and CPU meter for StallWatch: ``cpu.others`` is the other work's cores."""
    from attnlab import threads

    class Meter:
        now, busy, mine, others = 100.0, 0.0, 0.0, 1.0

        def sample(self):
            return self.now, self.busy, self.mine

        def wait(self, seconds):  # time passes; this process uses one core, the others theirs
            self.now += seconds
            self.mine += seconds
            self.busy += seconds * (1 + self.others)

    meter = Meter()
    monkeypatch.setattr(threads, "_cpu_sample", meter.sample)
    monkeypatch.setattr(threads.time, "monotonic", lambda: meter.now)
    monkeypatch.setattr(threads, "_last_switch", -float("inf"))
    return meter


def _stalls(watch):
    """One fast step, then STALLS stalled ones; whether the watch went to one thread."""
    from attnlab import threads

    watch.observe(0.0004)
    for _ in range(threads.STALLS):
        watch.observe(0.012)
    return watch.one_thread


STALLED = "decoding steps stalled .* runs on one thread until it leaves"


@contextlib.contextmanager
def _silent():
    """Nothing may be warned inside."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _stall(watch):
    """Stall ``watch`` onto one thread; with ``/proc/stat`` (the ``cpu`` fixture) it says nothing
    yet: a look must first see the other work."""
    with _silent():
        assert _stalls(watch)


def test_one_thread_until_the_other_work_leaves(two_threads, cpu):
    """Switched by a stall, the run looks at the machine every CHECK_AFTER seconds: while other
    work keeps a core busy it stays on one thread; once it is gone, back to all the threads."""
    from attnlab import threads

    watch = threads.StallWatch({})
    _stall(watch)
    with _silent():
        assert watch.run(torch.get_num_threads) == 1
    cpu.others = 0.0
    cpu.wait(threads.CHECK_AFTER / 2)  # the neighbour left, but it is too soon to look
    assert watch.run(torch.get_num_threads) == 1
    cpu.others = 1.0  # it came back
    cpu.wait(threads.CHECK_AFTER)  # the neighbour is still there: the look says so
    with pytest.warns(UserWarning, match=STALLED):
        assert watch.run(torch.get_num_threads) == 1 and watch.one_thread
    cpu.wait(threads.CHECK_AFTER)
    with _silent():  # once
        assert watch.run(torch.get_num_threads) == 1
    assert threads._last_switch == cpu.now  # the look that saw it renews the switch's memory
    assert threads.StallWatch({}).one_thread  # a run that starts now starts on one thread
    cpu.others = 0.1
    cpu.wait(threads.CHECK_AFTER)  # it left
    assert watch.run(torch.get_num_threads) == 2
    assert not watch.one_thread and watch.stalls == 0
    assert not threads.StallWatch({}).one_thread  # and later runs start on all the threads
    assert torch.get_num_threads() == 2


def test_a_passing_hiccup_costs_one_look(two_threads, cpu):
    """Stalls with no other work (the host took a virtual CPU away for a moment): the first look
    sends the run back, and a run that starts soon after looks at once."""
    from attnlab import threads

    cpu.others = 0.0
    watch = threads.StallWatch({})
    _stall(watch)
    nxt = threads.StallWatch({})
    assert nxt.one_thread  # within RECENT of the switch
    cpu.wait(threads.CHECK_AFTER)
    with _silent():  # a hiccup is never announced
        assert nxt.run(torch.get_num_threads) == 2 and not nxt.one_thread
        cpu.wait(threads.CHECK_AFTER)
        assert watch.run(torch.get_num_threads) == 2 and not watch.one_thread


def test_an_old_sample_is_renewed_before_deciding(two_threads, cpu):
    """A run that starts long after the last sample would average over the whole gap, diluting a
    neighbour that came since: the first look renews the sample, the next one decides."""
    from attnlab import threads

    cpu.others = 0.0
    _stall(threads.StallWatch({}))
    cpu.wait(3 * threads.CHECK_AFTER)  # a pause between generations, no other work in it
    cpu.others = 1.0  # a neighbour arrives
    watch = threads.StallWatch({})
    assert watch.one_thread
    assert watch.run(torch.get_num_threads) == 1  # the first look only renews the sample
    cpu.wait(threads.CHECK_AFTER)
    with pytest.warns(UserWarning, match=STALLED):  # the switch was silent: the neighbour is announced now
        assert watch.run(torch.get_num_threads) == 1 and watch.one_thread  # the neighbour is seen
    later = threads.StallWatch({})  # a run that starts beside it on one thread, already announced
    cpu.wait(threads.CHECK_AFTER)
    with _silent():
        assert later.run(torch.get_num_threads) == 1 and later.one_thread


def test_without_proc_stat_one_thread_stays(two_threads, monkeypatch):
    from attnlab import threads

    monkeypatch.setattr(threads, "_last_switch", -float("inf"))
    monkeypatch.setattr(threads, "_cpu_sample", lambda: None)
    watch = threads.StallWatch({})
    with pytest.warns(UserWarning, match=STALLED):  # nothing to look with: said at once
        assert _stalls(watch)
    monkeypatch.setattr(threads.time, "monotonic", lambda: 10**9)
    assert watch.run(torch.get_num_threads) == 1 and watch.one_thread


def _train(notice, cpu, seconds, steps):
    """``steps`` training steps of ``seconds`` each; the messages the notice returned."""
    said = []
    for _ in range(steps):
        cpu.wait(seconds)
        said += [m for m in [notice.observe(seconds)] if m]
    return said


def test_other_work_during_training_is_named_once_with_the_way_out(cpu):
    """Training cannot change how its spinning workers wait: after BUSY_LOOKS looks in a row
    that see other work, it says so once, with how much, and what to do."""
    from attnlab import threads

    cpu.others = 0.0
    notice = threads.NeighbourNotice(2, {})
    assert _train(notice, cpu, 0.02, 500) == []  # 10 s alone
    cpu.others = 1.0
    said = _train(notice, cpu, 0.3, 20)  # a busy process arrives: 6 s of slow steps
    assert len(said) == 1
    assert said[0].startswith("warning: other work keeps about 1.0 cores of this CPU busy")
    assert "(this one 300 ms, the fastest 20 ms)" in said[0]
    assert "--resume" in said[0] and "OMP_WAIT_POLICY=PASSIVE" in said[0]
    assert _train(notice, cpu, 0.3, 20) == []  # once


def test_it_takes_looks_in_a_row(cpu):
    """Other work for less than BUSY_LOOKS looks (a burst) says nothing, and the count starts again."""
    from attnlab import threads

    notice = threads.NeighbourNotice(2, {})
    for _ in range(5):
        cpu.others = 1.0
        assert _train(notice, cpu, 0.1, int((threads.BUSY_LOOKS - 1) * threads.LOOK_EVERY / 0.1)) == []
        cpu.others = 0.0
        assert _train(notice, cpu, 0.1, 15) == []
    cpu.others = 1.0
    assert len(_train(notice, cpu, 0.1, int((threads.BUSY_LOOKS + 1) * threads.LOOK_EVERY / 0.1))) == 1


def test_other_work_from_the_first_step_is_named_too(cpu):
    """A neighbour already there (Python code that did not look before torch loaded): every step is
    slow alike, and the looks still see it."""
    from attnlab import threads

    cpu.others = 1.0
    assert len(_train(threads.NeighbourNotice(2, {}), cpu, 0.7, 10)) == 1


def test_no_notice_with_one_thread_sleeping_workers_or_no_proc_stat(cpu, monkeypatch):
    from attnlab import threads

    cpu.others = 1.0
    for notice in (threads.NeighbourNotice(1, {}), threads.NeighbourNotice(2, {"OMP_WAIT_POLICY": "passive"})):
        assert _train(notice, cpu, 0.3, 50) == [] and not notice.enabled
    monkeypatch.setattr(threads, "_cpu_sample", lambda: None)
    notice = threads.NeighbourNotice(2, {})
    assert _train(notice, cpu, 0.3, 50) == [] and not notice.enabled


def test_the_wait_policy_is_chosen_when_torch_loads_and_not_before():
    """The command line installs a hook; the look at the other processes (here: one busy core)
    happens at the first ``import torch``, the policy lands in the environment before torch's
    OpenMP reads it, and the hook steps aside."""
    code = """
import os, sys
from attnlab import threads
threads.busy_cores = lambda *args, **kwargs: 1.0
threads.wait_policy_when_torch_loads(os.environ)
threads.wait_policy_when_torch_loads(os.environ)  # once is enough
hooks = sum(isinstance(f, threads._WhenTorchLoads) for f in sys.meta_path)
before = os.environ.get("OMP_WAIT_POLICY")
import torch
after = os.environ.get("OMP_WAIT_POLICY")
left = sum(isinstance(f, threads._WhenTorchLoads) for f in sys.meta_path)
threads.wait_policy_when_torch_loads(os.environ)  # torch is loaded: too late, nothing to do
print(hooks, before, after, left, sum(isinstance(f, threads._WhenTorchLoads) for f in sys.meta_path))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "None", "PASSIVE", "0", "0"]
