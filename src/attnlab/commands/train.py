"""``attnlab train TASK``: build the task's config (preset + --set), train, write the run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from attnlab.commands import add_dispatch, add_inputs, make_inputs, owned, report, require_out_under_torchrun
from attnlab.config import apply_overrides, build_config, config_from_dict, cpu_counterpart, describe, presets
from attnlab.errors import AttnlabError
from attnlab.tasks import TASKS

EXAMPLE = """\
attnlab train toy --preset tiny --out runs/toy
attnlab train gpt --preset tiny --set train.max_steps=40 --set train.lr=1e-3 --out runs/gpt --device cpu
attnlab train gpt --out runs/gpt --resume      # continue exactly where it stopped
attnlab train vit --list-presets
torchrun --nproc-per-node 2 -m attnlab.cli train toy --out runs/toy-ddp"""


def add_common(p: argparse.ArgumentParser) -> None:
    from attnlab.engine.config import DEVICES

    p.add_argument("--preset", help="named preset of the task's config (see --list-presets)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. train.lr=1e-3 or model.num_layers=4 (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<task>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (uses its saved config.json, "
                        "vocabulary and tokenizer; the data must be the same files)")
    p.add_argument("--resume-from", metavar="CHECKPOINT", default=None,
                   help="continue from this earlier checkpoint of a run (RUN/checkpoints/step-NNNNNNNN, kept when "
                        "train.keep_last > 0) instead of its latest; the run directory is the checkpoint's run")
    p.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: continue although a data file's checksum differs from the run's")
    p.add_argument("--device", choices=DEVICES,
                   help="override train.device (default auto: CUDA, then MPS, then CPU)")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (every --set key) and exit")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None,
                   help="no progress bar (by default shown when stderr is a terminal)")


def add_model_choice(p: argparse.ArgumentParser, task: ModuleType) -> None:
    """``--model NAME`` for tasks with several models: it also picks the preset of that name."""
    if hasattr(task, "MODELS"):
        p.add_argument("--model", choices=task.MODELS, default=None,
                       help="which model (default: the preset's); without --preset it also selects the preset "
                            "of that name. --print-config shows the recipe, e.g. model.max_len, the tokens kept "
                            "per input")


def configure_task(p: argparse.ArgumentParser, task: ModuleType) -> None:
    add_common(p)
    add_model_choice(p, task)
    add_inputs(p, task.INPUTS)


def task_example(name: str, task: ModuleType) -> str:
    names = list(presets(task.CONFIG))
    preset = f" --preset {names[-1]}" if names else ""
    # A task whose default run needs inputs (text: word vectors) gives its own first examples.
    first = getattr(task, "EXAMPLE", "") or "\n".join([
        f"attnlab train {name} --out runs/{name}",
        f"attnlab train {name}{preset} --set train.max_steps=100 --set train.lr=1e-3 --out runs/{name}-short"])
    return "\n".join([first, f"attnlab train {name} --out runs/{name} --resume",
                      f"attnlab train {name} --list-presets"])


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    add_dispatch(parser, argv, dest="task", metavar="TASK", registry=TASKS, configure=configure_task,
                 example=task_example)


def list_presets(cls: type) -> str:
    default = getattr(cls, "DEFAULT_PRESET", None)
    lines = []
    for name, overrides in presets(cls).items():
        cpu = cpu_counterpart(cls, name)
        flag = " (default)" if name == default else f" (for a GPU; on a CPU, {cpu})" if cpu else ""
        body = " ".join(f"{k}={v}" for k, v in overrides.items()) or "(the config defaults)"
        lines.append(f"{name}{flag}: {body}")
    return "\n".join(lines) or "(no presets)"


def resolve_config(task: ModuleType, args: argparse.Namespace, out: Path | None) -> Any:
    """The config of this run: the resumed checkpoint's own (plus ``--set``), or preset +
    ``--model`` + ``--set``."""
    source = Path(args.resume_from) if args.resume_from else out
    if args.resume and source is not None:
        from attnlab.engine.checkpoint import latest, read_meta  # torch: only a resume reads a checkpoint

        if (source / "meta.json").is_file() or latest(source) is not None:
            if args.preset:
                print("note: --resume uses the run's own config; --preset is ignored", file=sys.stderr)
            saved = read_meta(source, which="latest").get("config")
            if not isinstance(saved, dict):
                raise AttnlabError(f"the checkpoint in {source} holds no config (an older attnlab?); retrain "
                                   "without --resume")
            return apply_overrides(config_from_dict(task.CONFIG, saved), args.overrides)
    return config_for(task, args.preset, getattr(args, "model", None), args.overrides)


def config_for(task: ModuleType, preset: str | None, model: str | None, overrides: list[str]) -> Any:
    """Preset (``--model NAME`` alone picks preset NAME), then ``model.name``, then ``--set``."""
    model_overrides = [f"model.name={model}"] if model else []
    return build_config(task.CONFIG, preset or model, model_overrides + overrides)


def run_of_checkpoint(path: Path) -> Path:
    """The run directory of a ``RUN/checkpoints/step-*`` checkpoint (clear error otherwise)."""
    from attnlab.engine.checkpoint import CHECKPOINTS

    if not (path / "meta.json").is_file() or path.parent.name != CHECKPOINTS:
        raise AttnlabError(f"--resume-from {path} is not a checkpoint of a run (expected "
                           "RUN/checkpoints/step-NNNNNNNN holding meta.json); pass one of those")
    return path.parent.parent


def note_gpu_preset(cls: type, preset: str | None, device: str) -> None:
    """Say so when a preset sized for a GPU is about to train on the CPU, and name the one for a CPU."""
    from attnlab.device import select_device

    cpu = cpu_counterpart(cls, preset)
    if cpu is not None and select_device(device).type == "cpu":
        print(f"note: --preset {preset} is sized for a GPU, and this run is on the CPU, where its full run takes "
              f"many hours (--preset {cpu} is the one for a CPU)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    task: ModuleType = args._task_module
    if args.list_presets:
        print(list_presets(task.CONFIG))
        return 0
    if args.resume and args.resume_from:
        raise AttnlabError("pass either --resume (the run's latest checkpoint) or --resume-from CHECKPOINT (an "
                           "earlier one), not both")
    if args.allow_changed_data and not (args.resume or args.resume_from):
        raise AttnlabError("--allow-changed-data only applies when resuming (--resume or --resume-from); drop it "
                           "for a new run")
    if args.resume_from:
        args.resume = True
        args.out = args.out or str(run_of_checkpoint(Path(args.resume_from)))
    require_out_under_torchrun(args.out)
    out = Path(args.out) if args.out else None
    cfg = resolve_config(task, args, out)
    if args.device:
        cfg.train.device = args.device
    if args.print_config:
        print(describe(cfg))
        return 0
    from attnlab.engine.checkpoint import latest  # torch: from here on, work starts (config errors came first)
    from attnlab.engine.rundir import new_run_dir, refuse_restart

    if not args.resume:  # a resumed run keeps its own config, whatever --preset says
        note_gpu_preset(task.CONFIG, args.preset, cfg.train.device)

    if out is not None:
        refuse_restart(out, args.resume)
    run_dir, created = (out, not out.exists()) if out is not None else (new_run_dir(args.task), True)
    inputs = make_inputs(task.INPUTS, args)
    try:
        with owned(run_dir, created=created):  # one process per run directory; a failed start leaves nothing
            resume = Path(args.resume_from) if args.resume_from else args.resume
            metrics = task.train(cfg, inputs, run_dir, resume=resume, progress=args.progress,
                                 allow_changed_data=args.allow_changed_data)
            report(run_dir, metrics)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: say what is left to continue from
        what = "terminated" if type(exc) is not KeyboardInterrupt else "interrupted"
        last = latest(run_dir)
        if last is not None:
            raise type(exc)(f"{what}: the last checkpoint ({last.name}) is kept; run the same "
                            "command with --resume to continue") from None
        raise type(exc)(f"{what} before the first checkpoint: there is nothing to resume") from None
    return 0
