"""What every lab experiment shares: the ``--out`` option, writing the PNG and JSON, fitting slopes,
and the load average (:func:`begin` ... :func:`write_results`): recorded in the JSON, and, for an
experiment whose numbers are timings, a warning on the terminal and a red note on the figure when
the load exceeded the thread count."""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, and no backend surprises on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from attnlab.measure import LoadWatch  # noqa: E402

__all__ = ["add_out_argument", "begin", "Started", "write_results", "loglog_slope", "plt", "machine", "figure",
           "label_log_x", "label_log_y", "plain_labels", "threads"]


def add_out_argument(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--out", type=Path, default=Path("runs") / "lab" / name,
                   help=f"directory for {name}.png and {name}.json (default runs/lab/{name})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def threads() -> str:
    """``1 thread`` or ``N threads``: the CPU threads PyTorch uses, for a plot's title."""
    n = torch.get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''}"


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``plt.subplots`` with constrained layout, so that titles and axis labels never overlap."""
    return plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", squeeze=False)


def plain_labels(ticks) -> FuncFormatter:
    """Tick labels for ``ticks`` in one style: 16,384 or 0.002 when they all have everyday
    magnitudes, else powers of ten (5x10^6) for all of them."""
    everyday = all(t == 0 or 1e-4 <= abs(t) < 1e6 for t in ticks)

    def label(v: float, _pos: object = None) -> str:
        if everyday or v == 0:
            return f"{v:,.0f}" if float(v).is_integer() else f"{v:.3g}"
        exponent = int(np.floor(np.log10(abs(v))))
        mantissa = round(v / 10**exponent, 2)
        if mantissa == 1:
            return rf"$10^{{{exponent}}}$"
        return rf"${mantissa:g}\times10^{{{exponent}}}$"

    return FuncFormatter(label)


def _thin(values: list[float], most: int) -> list[float]:
    """Every k-th of the sorted ``values`` (k as small as keeps at most ``most``), always the last."""
    step = -(-len(values) // most)  # ceil
    return values[::-1][::step][::-1]


def label_log_x(ax: Any, values, *, max_labels: int = 8) -> None:
    """Label a log-scaled x axis at the measured ``values`` only (at most ``max_labels`` of them),
    written out in full; the minor ticks keep their grid lines but lose their labels, which
    otherwise run together. Call it after the axis's scale is set."""
    vals = _thin(sorted({float(v) for v in values}), max_labels)
    ax.xaxis.set_major_locator(FixedLocator(vals))
    ax.xaxis.set_major_formatter(plain_labels(vals))
    ax.xaxis.set_minor_formatter(NullFormatter())


def label_log_y(ax: Any) -> None:
    """Label a log-scaled y axis at the powers of ten when it spans two decades or more, else at
    1, 2 and 5 times them (or every integer multiple, on a short axis), written out in full and
    without minor-tick labels. Call it after plotting."""
    lo, hi = ax.get_ylim()
    decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    for subs in ((1.0,), (1.0, 2.0, 5.0), tuple(float(i) for i in range(1, 10))):
        ticks = [m * 10**e for e in decades for m in subs if lo <= m * 10**e <= hi]
        if len(ticks) >= 3:
            break
    ticks = _thin(ticks, 8)  # at most 8 labels, always the top one
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(plain_labels(ticks))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


@dataclass
class Started:
    """When an experiment began: the clock, the load average then, and whether its numbers are
    timings (then a busy machine is flagged on its figure)."""

    clock: float
    load: LoadWatch
    timed: bool


def begin(*, timed: bool) -> Started:
    """Call first thing in ``run``; hand the result to :func:`write_results`."""
    return Started(time.perf_counter(), LoadWatch.start(), timed)


def busy_note(fig: Any, load: LoadWatch) -> None:
    """A red note under the figure: the machine was busy, so the timings are not the machine's."""
    fig.text(0.5, 0, f"BUSY MACHINE: {load.summary()} (above the thread count);\n"
             "the timings are slower and noisier than this machine's: re-run on a quiet machine before quoting them",
             ha="center", va="top", fontsize=9, color="#c5221f")


def write_results(
    out: Path, name: str, fig: Any, *, config: dict, results: dict, headline: dict, started: Started
) -> tuple[Path, Path]:
    """Save ``fig`` as ``out/name.png`` and the numbers as ``out/name.json`` with the load average
    before and after; print both paths, and a warning if a timed experiment ran on a busy machine."""
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"{name}.png", out / f"{name}.json"
    load = started.load.stop()
    warning = load.warning() if started.timed else None
    if warning is not None:
        busy_note(fig, load)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    doc = {"experiment": name, "config": config, "headline": headline, "results": results,
           "machine": machine(), "load": load.record(), "load_warning": warning,
           "seconds": round(time.perf_counter() - started.clock, 3)}
    js.write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n")
    for key, value in headline.items():
        print(f"  {key}: {_fmt(value)}")
    print(f"  {load.summary()}")
    if warning is not None:
        sys.stdout.flush()  # the warning after the lines it is about, even when both are piped
        print(warning, file=sys.stderr)
    print(f"wrote {png} and {js}")
    return png, js


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p of y ~ c x^p."""
    lx, ly = np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float))
    return float(np.polyfit(lx, ly, 1)[0])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _jsonable(v: Any) -> Any:
    """Plain JSON types; non-finite floats become None (JSON has no NaN/inf)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, torch.Tensor):
        return _jsonable(v.tolist())
    return v
