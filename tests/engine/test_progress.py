"""The console's clocks: a step's own time goes to the neighbour notice (attnlab.threads), which a
training run on a CPU sets up."""

from __future__ import annotations

import time

import torch

from attnlab import threads
from attnlab.engine import fit
from attnlab.engine.progress import Progress


class Recorder:
    def __init__(self, message=None):
        self.seen, self.message = [], message

    def observe(self, seconds):
        self.seen.append(seconds)
        return self.message


def test_a_step_is_timed_from_the_last_step_or_from_logging_and_validation(monkeypatch, capsys):
    """Validation and the log record open a new window: their time is not a step's."""
    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    progress = Progress(10, time_limit=None, enabled=True)
    progress.start(0, 0.0, show=False)
    progress.neighbours = Recorder()
    clock[0] += 0.5
    progress.stepped(1)
    clock[0] += 0.25
    progress.stepped(2)
    clock[0] += 7.0  # validation
    progress.open_window()
    clock[0] += 0.125
    progress.stepped(3)
    assert progress.neighbours.seen == [0.5, 0.25, 0.125]
    progress.neighbours = Recorder("warning: the neighbour")
    progress.stepped(4)
    assert "warning: the neighbour" in capsys.readouterr().err
    progress.close()


def test_training_beside_a_process_that_arrives_says_so(tmp_path, tiny, monkeypatch, capsys):
    """fit on a CPU with spinning workers: other work that stays brings the notice, once."""
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    meter = {"now": 0.0, "busy": 0.0, "mine": 0.0}
    monkeypatch.setattr(threads, "_cpu_sample", lambda: (meter["now"], meter["busy"], meter["mine"]))
    monkeypatch.setattr(threads.time, "monotonic", lambda: meter["now"])
    steps = [0]

    def loss(model, batch):  # 20 steps alone, then a busy neighbour: each step is 0.5 s on the meter's clock
        steps[0] += 1
        meter["now"] += 0.5
        meter["busy"] += 0.5 * (2 if steps[0] > 20 else 1)  # this process one core, the neighbour the other
        meter["mine"] += 0.5
        return tiny.loss(model, batch)

    before = torch.get_num_threads()
    try:
        fit(tiny.net(), loss, tiny.batches(tiny.data(320), 8), None, tiny.cfg(epochs=1), tmp_path, progress=False,
            tensorboard=False)
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    assert err.count("warning: other work keeps about 1.0 cores of this CPU busy") == 1
