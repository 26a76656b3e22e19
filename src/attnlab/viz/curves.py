"""Learning curves: a metric of one or more runs against training time or steps, as a PNG."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from attnlab.engine.logging import METRICS_LOG, read_records
from attnlab.errors import AttnlabError
from attnlab.files import save_figure

__all__ = ["run_records", "plot_curves", "curves_figure"]


def run_records(run: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``, with a clear error when there is none."""
    if not (run / METRICS_LOG).is_file():
        raise AttnlabError(f"{run} has no {METRICS_LOG}; pass the directory of an `attnlab train` run")
    records = read_records(run)  # lines that are not records (cut short, overwritten) are skipped
    if not records and (run / METRICS_LOG).stat().st_size:  # not a log attnlab wrote (random bytes, ...)
        raise AttnlabError(f"{run}/{METRICS_LOG} is not a training log (no line of it is a record); pass the "
                           "directory of an `attnlab train` run")
    return records


def plot_curves(runs: list[Path], *, y: str, x: str, out: Path, labels: list[str] | None = None,
                title: str | None = None) -> Path:
    """Draw ``y`` against ``x`` (``train_seconds``, ``step`` or ``epoch``) for every run; write ``out``."""
    save_figure(curves_figure(runs, y=y, x=x, labels=labels, title=title), out, dpi=110)
    return out


def curves_figure(runs: list[Path], *, y: str, x: str, labels: list[str] | None = None,
                  title: str | None = None) -> Any:
    """The figure of :func:`plot_curves`: a matplotlib ``Figure`` of its own, outside pyplot (no
    backend is chosen, none is left open; a notebook displays it, ``savefig`` writes it)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, run in enumerate(runs):
        points = [(r[x], r[y]) for r in run_records(run)
                  if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
        if not points:
            raise AttnlabError(f"{run}/metrics.jsonl has no records with both {x!r} and {y!r}; try --y val_loss "
                               "or --x step")
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o-", markersize=3, label=labels[i] if labels else run.name)
    names = {"train_seconds": "training time (s)", "step": "optimizer steps", "epoch": "epochs"}
    title = title or f"{y} against {names.get(x, x)}"
    ax.set(xlabel=names.get(x, x), ylabel=y.replace("_", " "), title="\n".join(textwrap.wrap(title, 60)))  # fits 6 in
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
