"""``attnlab curves RUN [RUN ...]``: learning curves of training runs as one PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw a metric of one or more runs (e.g. val_accuracy) against training time, steps or epochs"
EXAMPLE = """\
attnlab curves runs/vit-cpu --y val_accuracy --out vit-curve.png
attnlab curves runs/gpt-a runs/lstm-a --y val_perplexity --x step --out lm.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories of `attnlab train`")
    parser.add_argument("--y", default="val_accuracy", help="the metric to draw (default val_accuracy)")
    parser.add_argument("--x", default="train_seconds", choices=["train_seconds", "step", "epoch"],
                        help="against training time (default), optimizer steps or epochs")
    parser.add_argument("--label", action="append", default=None, help="a legend label per run (repeatable)")
    parser.add_argument("--title", default=None, help="the figure's title")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write (default curves.png)")


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.viz.curves import plot_curves

    if args.label is not None and len(args.label) != len(args.runs):
        raise AttnlabError(f"give one --label per run ({len(args.runs)}), got {len(args.label)}")
    out = plot_curves(args.runs, y=args.y, x=args.x, out=args.out, labels=args.label, title=args.title)
    print(f"wrote {out}")
    return 0
