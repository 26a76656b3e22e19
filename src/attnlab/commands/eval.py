"""``attnlab eval TASK --checkpoint PATH``: evaluate a trained model, write metrics.json."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import ModuleType

from attnlab.commands import default_run_dir, is_main_process, report, write_json
from attnlab.commands.train import TASK_HELP
from attnlab.tasks import TASKS, load_task

HELP = "evaluate a checkpoint on the task's validation/test data and write metrics.json"
EXAMPLE = """\
attnlab eval toy --checkpoint runs/toy
attnlab eval gpt --checkpoint runs/gpt/checkpoints/step-00001200 --out runs/gpt-eval"""


def configure_task(p: argparse.ArgumentParser, task: ModuleType) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="a run directory (its best checkpoint is used) or a checkpoints/step-* directory")
    p.add_argument("--out", help="run directory for the results (default: runs/<task>-eval-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="where to evaluate (default auto: CUDA, then MPS, then CPU)")
    task.add_arguments(p)


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    from attnlab.commands import add_dispatch

    add_dispatch(parser, argv, dest="task", metavar="TASK", known={n: TASK_HELP.get(n, n) for n in TASKS},
                 package="attnlab.tasks", kind="task", configure=configure_task,
                 example=lambda name, _: f"attnlab eval {name} --checkpoint runs/{name}\n"
                                         f"attnlab eval {name} --checkpoint runs/{name}/checkpoints/step-00000100 --out runs/{name}-eval")


def run(args: argparse.Namespace) -> int:
    task: ModuleType = args._task_module if hasattr(args, "_task_module") else load_task(args.task)
    run_dir = Path(args.out) if args.out else default_run_dir(args.task, "eval")
    created = not run_dir.exists()
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", {"task": args.task, "checkpoint": str(args.checkpoint),
                                             "device": args.device})
    try:
        metrics = task.evaluate(args, run_dir)
    except BaseException:
        if created and is_main_process():  # a failed eval (wrong checkpoint, bad data) leaves no litter
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    report(run_dir, metrics)
    return 0
