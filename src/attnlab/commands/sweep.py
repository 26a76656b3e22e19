"""``attnlab sweep``: train one task over a grid of config values; tabulate the results.

Every combination of the ``--grid`` values is one training run (``attnlab train TASK`` with
those ``--set`` overrides) in its own folder under ``--out``. The results go to
``results.csv`` and ``results.md`` (one row per run, best ``--metric`` first) and to
TensorBoard's HParams tab (``--out``/tb). Options after ``TASK`` that the sweep does not know
are the task's own (e.g. ``--model``, ``--data-dir`` for ``text``).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

from attnlab.commands import add_inputs, make_inputs, owned
from attnlab.errors import AttnlabError
from attnlab.files import make_folder, write_atomic, write_json
from attnlab.tasks import TASKS

HELP = "train a task over a grid of hyperparameters; write CSV, Markdown and TensorBoard hparams"
EXAMPLE = ("attnlab sweep text --model transformer --data-dir data/aclImdb --embeddings glove.6B.50d.txt "
           "--grid model.num_layers=1,2 train.lr=1e-3,3e-4 --out runs/sweep-transformer")


def _add_sweep_options(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    parser.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", default=d([]),
                        help="config keys and their comma-separated values; every combination is run")
    parser.add_argument("--preset", default=d(None), help="the task preset every run starts from")
    parser.add_argument("--set", dest="set", action="append", metavar="KEY=VALUE", default=d([]),
                        help="a fixed override for every run (repeatable)")
    parser.add_argument("--out", type=Path, default=d(None), help="sweep folder (default runs/sweep-TASK-TIME)")
    parser.add_argument("--metric", default=d(None),
                        help="column to sort by (default: train.monitor of the config, e.g. val_accuracy)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", metavar="TASK", help=f"the task to sweep ({TASKS.listing()})")
    _add_sweep_options(parser)
    parser.add_argument("task_args", nargs=argparse.REMAINDER,
                        help="sweep options (--grid ...) and the task's own options, after TASK")


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["a=1,2", "b=x"]`` -> ``[("a", ["1", "2"]), ("b", ["x"])]``, with clear errors."""
    grid, seen = [], set()
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",")]
        if not sep or not key or not any(vals):
            raise AttnlabError(f"--grid expects KEY=V1,V2,... (e.g. train.lr=1e-3,3e-4), got {item!r}")
        if not all(vals):
            n = vals.index("") + 1
            raise AttnlabError(f"--grid {item!r}: value {n} of '{key}' is empty (two commas in a row, or one at "
                               "an end); remove the extra comma or write the value")
        if key in seen:
            raise AttnlabError(f"--grid names '{key}' twice; list all its values once: {key}=V1,V2")
        seen.add(key)
        grid.append((key, vals))
    if not grid:
        raise AttnlabError("nothing to sweep: pass --grid KEY=V1,V2 [KEY=V1,V2 ...]")
    return grid


def _write_tables(out: Path, rows: list[dict], keys: list[str], metric: str, mode: str) -> None:
    metric_cols = sorted({k for r in rows for k in r["metrics"]})
    lead = [m for m in (metric, "test_accuracy", "val_loss", "train_seconds") if m in metric_cols]
    metric_cols = lead + [m for m in metric_cols if m not in lead]

    def score(r: dict) -> float:
        v = r["metrics"].get(metric, math.nan)
        return -math.inf if not math.isfinite(v) else (v if mode == "max" else -v)

    rows = sorted(rows, key=score, reverse=True)
    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["run", *keys, "status", *metric_cols])
    for r in rows:
        w.writerow([r["name"], *(r["params"][k] for k in keys), r["status"],
                    *(r["metrics"].get(m, "") for m in metric_cols)])
    write_atomic(out / "results.csv", table.getvalue())
    shown = metric_cols[:6]
    lines = ["| run | " + " | ".join(keys + ["status"] + shown) + " |",
             "|---" * (len(keys) + len(shown) + 2) + "|"]
    for r in rows:
        vals = [f"{r['metrics'][m]:.4g}" if m in r["metrics"] else "" for m in shown]
        cells = [r["name"], *(str(r["params"][k]) for k in keys), r["status"], *vals]
        lines.append("| " + " | ".join(cells) + " |")
    write_atomic(out / "results.md", f"Sweep results, best {metric} first.\n\n" + "\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    from attnlab.commands.train import add_model_choice, config_for
    from attnlab.engine.config import monitor_mode

    task = TASKS.load(args.task)
    parser = argparse.ArgumentParser(prog=f"attnlab sweep {args.task}")
    _add_sweep_options(parser, defaults=False)
    add_model_choice(parser, task)
    add_inputs(parser, task.INPUTS)
    try:
        ns = parser.parse_args(args.task_args or [])
    except SystemExit as e:  # argparse printed the help (code 0) or the problem
        if e.code == 0:
            return 0
        raise AttnlabError(f"bad options for `attnlab sweep {args.task}` (see above)") from e
    # Sweep options may come before TASK (parsed by the CLI) or after it (parsed here).
    ns.set = list(getattr(args, "set", None) or []) + list(getattr(ns, "set", []))
    ns.grid = list(getattr(args, "grid", None) or []) + list(getattr(ns, "grid", []))
    for name in ("preset", "out", "metric"):
        if not hasattr(ns, name):
            setattr(ns, name, getattr(args, name, None))
    grid = parse_grid(ns.grid)
    keys = [k for k, _ in grid]
    out = ns.out or Path("runs") / f"sweep-{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise AttnlabError(f"--out {out} is a file, not a directory; choose a directory name for the sweep")
    combos = list(itertools.product(*[v for _, v in grid]))
    # Check every combination before training anything: a typo fails now, not after an hour.
    model = getattr(ns, "model", None)
    configs = [config_for(task, ns.preset, model, ns.set + [f"{k}={v}" for k, v in zip(keys, c)]) for c in combos]
    inputs = make_inputs(task.INPUTS, ns)
    metric = ns.metric or configs[0].train.monitor
    mode = monitor_mode(metric)
    make_folder(out)  # only now: a refused grid or config leaves no empty sweep folder behind

    from torch.utils.tensorboard import SummaryWriter  # torch: from here on, work starts

    from attnlab.engine.checkpoint import latest

    writer = SummaryWriter(str(out / "tb"))
    rows: list[dict[str, Any]] = []
    try:
        for i, (combo, cfg) in enumerate(zip(combos, configs)):
            params = dict(zip(keys, combo))
            name = f"run{i:03d}-" + "-".join(f"{k.split('.')[-1]}={v}" for k, v in params.items())
            run_dir = out / name
            print(f"[{i + 1}/{len(combos)}] {name}", file=sys.stderr, flush=True)
            resume = latest(run_dir) is not None  # a sweep run again continues its runs
            try:
                with owned(run_dir, created=not run_dir.exists()):  # one process per run directory
                    metrics = task.train(cfg, inputs, run_dir, resume=resume)
                    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
                    write_json(run_dir / "metrics.json", metrics)
                status = "ok"
            except AttnlabError as e:
                print(f"error: {name}: {e}", file=sys.stderr)
                metrics, status = {}, "failed"
            rows.append({"name": name, "params": params, "status": status, "metrics": metrics})
            hp = {k: _hp_value(v) for k, v in params.items()}
            writer.add_hparams(hp, {f"hparam/{k}": v for k, v in metrics.items() if math.isfinite(v)},
                               run_name=name)
            _write_tables(out, rows, keys, metric, mode)  # after every run: partial results survive
    finally:
        writer.close()
    best = max(rows, key=lambda r: (r["metrics"].get(metric, -math.inf) if mode == "max"
                                    else -r["metrics"].get(metric, math.inf)))
    print(f"{len(rows)} runs; best {metric}: {best['metrics'].get(metric, float('nan')):.4f} ({best['name']})")
    print(f"results: {out / 'results.csv'}, {out / 'results.md'}, TensorBoard: {out / 'tb'}")
    return 0


def _hp_value(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v
