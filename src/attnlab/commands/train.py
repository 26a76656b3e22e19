"""``attnlab train TASK``: build the task's config (preset + --set), train, write the run directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from attnlab.commands import (
    add_dispatch,
    add_inputs,
    default_run_dir,
    is_main_process,
    make_inputs,
    report,
    require_out_under_torchrun,
    write_json,
)
from attnlab.config import apply_overrides, build_config, config_from_dict, config_to_dict, describe, presets
from attnlab.errors import AttnlabError
from attnlab.tasks import TASKS

EXAMPLE = """\
attnlab train toy --preset tiny --out runs/toy
attnlab train gpt --preset tiny --set train.epochs=2 --set train.lr=1e-3 --out runs/gpt --device cpu
attnlab train gpt --out runs/gpt --resume      # continue exactly where it stopped
attnlab train vit --list-presets
torchrun --nproc-per-node 2 -m attnlab.cli train toy --out runs/toy-ddp"""


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="named preset of the task's config (see --list-presets)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. train.lr=1e-3 or model.num_layers=4 (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<task>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (uses its saved config.json)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
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
    lines = [f"attnlab train {name} --out runs/{name}",
             f"attnlab train {name}{preset} --set train.epochs=2 --set train.lr=1e-3 --out runs/{name}-short",
             f"attnlab train {name} --out runs/{name} --resume",
             f"attnlab train {name} --list-presets"]
    extra = getattr(task, "EXAMPLE", "")
    return "\n".join(lines) + ("\n" + extra if extra else "")


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    add_dispatch(parser, argv, dest="task", metavar="TASK", registry=TASKS, configure=configure_task,
                 example=task_example)


def list_presets(cls: type) -> str:
    default = getattr(cls, "DEFAULT_PRESET", None)
    lines = []
    for name, overrides in presets(cls).items():
        flag = " (default)" if name == default else ""
        body = " ".join(f"{k}={v}" for k, v in overrides.items()) or "(the config defaults)"
        lines.append(f"{name}{flag}: {body}")
    return "\n".join(lines) or "(no presets)"


def resolve_config(task: ModuleType, args: argparse.Namespace, saved: Path) -> Any:
    """The config of this run: the resumed run's ``config.json``, or preset + ``--model`` + ``--set``."""
    cls = task.CONFIG
    if args.resume and saved.exists():
        if args.preset:
            print("note: --resume uses the run's saved config.json; --preset is ignored", file=sys.stderr)
        try:
            data = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise AttnlabError(f"{saved} is not valid JSON ({exc}); fix or delete it") from None
        return apply_overrides(config_from_dict(cls, data), args.overrides)
    return config_for(task, args.preset, getattr(args, "model", None), args.overrides)


def config_for(task: ModuleType, preset: str | None, model: str | None, overrides: list[str]) -> Any:
    """Preset (``--model NAME`` alone picks preset NAME), then ``model.name``, then ``--set``."""
    model_overrides = [f"model.name={model}"] if model else []
    return build_config(task.CONFIG, preset or model, model_overrides + overrides)


def run(args: argparse.Namespace) -> int:
    task: ModuleType = args._task_module
    if args.list_presets:
        print(list_presets(task.CONFIG))
        return 0
    require_out_under_torchrun(args.out)
    run_dir = Path(args.out) if args.out else default_run_dir(args.task)
    saved = run_dir / "config.json"
    cfg = resolve_config(task, args, saved)
    if args.device:
        cfg.train.device = args.device
    if args.print_config:
        print(describe(cfg))
        return 0
    if not args.resume and (run_dir / "checkpoints" / "latest").exists():
        raise AttnlabError(f"{run_dir} already holds a training run; pass --resume to continue it, "
                           "or choose another --out directory")
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(saved, config_to_dict(cfg))
    metrics = task.train(cfg, make_inputs(task.INPUTS, args), run_dir, resume=args.resume, progress=args.progress)
    report(run_dir, metrics)
    return 0
