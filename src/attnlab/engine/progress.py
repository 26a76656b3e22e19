"""`Progress`: a training run as seen on the console, and its clocks.

On a terminal, and in a Jupyter notebook (``tqdm.auto`` picks the notebook's widget bar there), a
progress bar whose postfix shows the last logged loss and throughput; otherwise a
log line (step, loss, throughput, elapsed, ETA) every :attr:`Progress.LINE_EVERY` seconds. Notes
are printed above the bar, and after the second step of a session a warning says so when the run
will take hours (a typo in a size). On a CPU, each step's own time goes to a
:class:`attnlab.threads.NeighbourNotice`, which warns once when other work stalls the spinning
workers. Only the main process prints.

The clocks live here too: the training clock (``train_seconds``, which continues across a
resume) and the throughput window, which counts training time only.
:class:`attnlab.engine.run.TrainingRun` reports to this object; nothing here changes what is
trained or saved.
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from typing import Any

from tqdm.auto import tqdm

from attnlab.threads import NeighbourNotice

__all__ = ["Progress"]

# tqdm.auto chose the notebook's widget bar: this runs in a Jupyter kernel with ipywidgets, where stderr
# is no terminal but a bar is what a person watches
IN_NOTEBOOK = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)
LONG_RUN_SECONDS = 3 * 3600  # warn when the rest of a run will take longer (a laptop recipe takes minutes)


class Progress:
    """The console and the clocks of one training run (``enabled``: this is the main process)."""

    LINE_EVERY = 10.0  # seconds between log lines when there is no bar

    def __init__(self, total_steps: int, *, time_limit: float | None, enabled: bool) -> None:
        self.total_steps, self.time_limit, self.enabled = total_steps, time_limit, enabled
        self.bar: Any = None
        self.log_lines = False  # print log lines instead of a bar (stderr is not a terminal)
        self.clock0 = self.window_t0 = self.last_line = self.second_step_t0 = time.perf_counter()
        self.first_step = 0  # the step this session started at
        self.step_t0 = self.clock0  # when the last step ended
        self.neighbours: NeighbourNotice | None = None  # on a CPU: says when other work stalls the steps

    def start(self, step: int, train_seconds: float, show: bool | None) -> None:
        """Start the clocks (``train_seconds`` were trained before) and the bar at ``step``.

        The bar shows on a terminal or in a notebook (or with ``show=True``); otherwise, unless
        ``show=False``, a log line is printed every few seconds instead.
        """
        self.clock0 = time.perf_counter() - train_seconds
        self.window_t0 = self.last_line = self.second_step_t0 = time.perf_counter()
        self.first_step = step
        watched = sys.stderr.isatty() or IN_NOTEBOOK  # a terminal or a notebook: a person watches a bar
        show_bar = self.enabled and (show is True or (show is None and watched))
        self.log_lines = self.enabled and show is None and not watched
        self.bar = tqdm(total=self.total_steps, initial=step, desc="train", unit="step", file=sys.stderr,
                        disable=not show_bar, dynamic_ncols=True)

    def note(self, message: str) -> None:
        """One line on stderr (main process only), printed above the progress bar."""
        if self.enabled:
            tqdm.write(message, file=sys.stderr)

    def writing(self) -> AbstractContextManager[Any]:
        """A block in which others (``on_eval``) may print: the bar steps aside."""
        return tqdm.external_write_mode(file=sys.stderr)

    # ----------------------------------------------------------------- clocks
    def elapsed(self) -> float:
        """Seconds of training, earlier sessions of a resumed run included."""
        return time.perf_counter() - self.clock0

    def throughput(self, sums: dict[str, float]) -> tuple[str, float]:
        """(unit, per second) since the throughput window opened, from a loss's summed statistics:
        tokens when the loss counts them (language models), else examples."""
        unit = "tokens" if "tokens" in sums else "examples"
        return unit, sums.get(unit, sums.get("count", 0.0)) / max(time.perf_counter() - self.window_t0, 1e-9)

    def open_window(self) -> None:
        """Start a new throughput window (after a log record, and after validation: throughput
        counts training time only)."""
        self.window_t0 = time.perf_counter()

    # ----------------------------------------------------------------- reports
    def stepped(self, step: int) -> None:
        """Optimizer step ``step`` is done: advance the bar, and time the session's second step."""
        self.bar.update(1)
        now = time.perf_counter()
        if self.neighbours is not None:  # the step's own time: logging and validation open a new window
            message = self.neighbours.observe(now - max(self.step_t0, self.window_t0))
            if message:
                self.note(message)
        self.step_t0 = now
        if step == self.first_step + 2:  # the first step pays one-off costs; the second one is typical
            self._warn_if_long(step, now - self.second_step_t0)
        elif step == self.first_step + 1:
            self.second_step_t0 = now

    def _warn_if_long(self, step: int, seconds_per_step: float) -> None:
        """Say so at once when the run will take far longer than a laptop recipe (a typo in a size)."""
        total = seconds_per_step * (self.total_steps - step)
        if total > LONG_RUN_SECONDS and (self.time_limit is None or self.time_limit > LONG_RUN_SECONDS):
            self.note(f"warning: a step takes {seconds_per_step:.2f} s here, so the remaining "
                      f"{self.total_steps - step:,} steps will take about {total / 3600:.1f} hours; "
                      "press Ctrl-C and lower the model or batch sizes (or set train.max_steps) if that is not "
                      "intended")

    def trained(self, step: int, loss: float, unit: str, rate: float) -> None:
        """A training record was logged: show it on the bar, or as a log line with the ETA every
        :attr:`LINE_EVERY` seconds and at the last step."""
        self.bar.set_postfix(loss=f"{loss:.4f}", **{f"{unit}/s": f"{rate:,.0f}"}, refresh=False)
        if self.log_lines and (time.perf_counter() - self.last_line >= self.LINE_EVERY or step >= self.total_steps):
            eta = (self.total_steps - step) * self.elapsed() / max(1, step)
            self.note(f"step {step}/{self.total_steps}  train_loss {loss:.4f}  {rate:,.0f} {unit}/s  "
                      f"elapsed {self.elapsed():.0f} s  eta {eta:.0f} s")
            self.last_line = time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
