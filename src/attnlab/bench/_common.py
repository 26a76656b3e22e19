"""What every benchmark prints the same way: whether it met its bar, and how busy the machine was.

A benchmark with a bar (the ratio it must reach) prints :func:`bar_verdict`: the value beside
the bar, and, when it misses, a plain ``MISSED: ... below the bar of ...``; the exit code stays 0
unless the benchmark has a ``--check`` option. Every benchmark starts a
:class:`attnlab.measure.LoadWatch` before it measures and ends with :func:`report_load`.
"""

from __future__ import annotations

import sys

from attnlab.measure import LoadWatch

__all__ = ["bar_verdict", "report_load"]


def bar_verdict(what: str, value: float, bar: float, *, unit: str = "x", at_least: bool = True,
                digits: int = 2) -> str:
    """``speed-up: 5.31x (bar: >= 5x, met)``, or ``speed-up: 3.84x. MISSED: 3.84x is below the bar of
    >= 5x`` (``at_least=False``: a bar the value must stay under, missed when above it)."""
    shown, sign = f"{value:.{digits}f}{unit}", ">=" if at_least else "<="
    met = value >= bar if at_least else value <= bar
    if met:
        return f"{what}: {shown} (bar: {sign} {bar:g}{unit}, met)"
    side = "below" if at_least else "above"
    return f"{what}: {shown}. MISSED: {shown} is {side} the bar of {sign} {bar:g}{unit}"


def report_load(load: LoadWatch, *, table: bool = True) -> None:
    """End a measurement: stop ``load`` (unless stopped already), print its summary (with ``table``,
    i.e. unless the standard output carries JSON) and, when the machine was busy, a warning on the
    standard error."""
    if load.after is None:
        load.stop()
    if table:
        print(load.summary())
    warning = load.warning()
    if warning is not None:
        sys.stdout.flush()  # the warning after the lines it is about, even when both are piped
        print(warning, file=sys.stderr)
