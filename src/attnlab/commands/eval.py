"""``attnlab eval TASK --checkpoint PATH``: evaluate a trained model, write metrics.json."""

from __future__ import annotations

import argparse
import contextlib
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


def _own(stack: contextlib.ExitStack, run_dir: Path, created: bool) -> bool:
    """Own ``run_dir`` for the rest of ``stack`` (a lock that cannot be written is one error, and
    leaves nothing: :func:`attnlab.engine.rundir.run_directory`); returns whether this made its
    ``.lock`` in a directory that existed, to remove again if the evaluation fails."""
    from attnlab.engine.rundir import LOCK

    made_lock = not created and not (run_dir / LOCK).exists()
    stack.enter_context(owned(run_dir, created=created))
    return made_lock


def run(args: argparse.Namespace) -> int:
    from attnlab.engine.rundir import LOCK, new_run_dir
    from attnlab.files import write_json

    task: ModuleType = args._task_module
    if args.out:
        run_dir, created = Path(args.out), not Path(args.out).exists()
        refuse_training_run(run_dir)
    else:
        run_dir, created = new_run_dir(args.task, "eval"), True
    inputs = make_inputs(task.INPUTS, args)
    with contextlib.ExitStack() as stack:  # a failed eval (wrong checkpoint, bad data, full disk) leaves no litter
        made_lock = _own(stack, run_dir, created)
        try:
            write_json(run_dir / "config.json", {"task": args.task, "checkpoint": str(args.checkpoint),
                                                 "device": args.device})
            metrics = task.evaluate(args.checkpoint, inputs, device=args.device)
            report(run_dir, metrics)
        except BaseException:
            if made_lock:  # a directory that was there before keeps nothing of this attempt
                (run_dir / LOCK).unlink(missing_ok=True)
            raise
    return 0
