"""``attnlab eval TASK --checkpoint PATH``: evaluate a trained model, write metrics.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

from attnlab.commands import add_dispatch, add_inputs, make_inputs, owned, refuse_training_run, report
from attnlab.tasks import TASKS

HELP = "evaluate a checkpoint on the task's validation/test data and write metrics.json"
EXAMPLE = """\
attnlab eval toy --checkpoint runs/toy
attnlab eval gpt --checkpoint runs/gpt/checkpoints/step-00001200 --out runs/gpt-eval"""


def configure_task(p: argparse.ArgumentParser, task: ModuleType) -> None:
    from attnlab.engine.config import DEVICES

    p.add_argument("--checkpoint", required=True,
                   help="a run directory (its best checkpoint is used) or a checkpoints/step-* directory")
    p.add_argument("--out", help="run directory for the results (default: runs/<task>-eval-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to evaluate (default auto: CUDA, then MPS, then CPU)")
    add_inputs(p, task.INPUTS)


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    def example(name: str, _: ModuleType) -> str:
        return (f"attnlab eval {name} --checkpoint runs/{name}\n"
                f"attnlab eval {name} --checkpoint runs/{name}/checkpoints/step-00000100 --out runs/{name}-eval")

    add_dispatch(parser, argv, dest="task", metavar="TASK", registry=TASKS, configure=configure_task, example=example)


def run(args: argparse.Namespace) -> int:
    from attnlab.engine.rundir import new_run_dir
    from attnlab.files import write_json

    task: ModuleType = args._task_module
    if args.out:
        run_dir, created = Path(args.out), not Path(args.out).exists()
        refuse_training_run(run_dir)
    else:
        run_dir, created = new_run_dir(args.task, "eval"), True
    inputs = make_inputs(task.INPUTS, args)
    # a failed eval (wrong checkpoint, bad data, full disk) leaves no directory it made, nor its lock
    with owned(run_dir, created=created):
        write_json(run_dir / "config.json", {"task": args.task, "checkpoint": str(args.checkpoint),
                                             "device": args.device})
        metrics = task.evaluate(args.checkpoint, inputs, device=args.device)
        report(run_dir, metrics)
    return 0
