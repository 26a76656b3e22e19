"""One module per ``attnlab`` subcommand (:data:`COMMANDS`), plus the helpers they share.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``, and optionally
``HELP`` (a longer description than the registry's one line) and ``EXAMPLE``. Commands that
dispatch one level further (``train TASK``, ``bench NAME``) take ``add_arguments(parser, argv)``
so that only the chosen task or benchmark is imported. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from attnlab.bench import BENCHMARKS
from attnlab.data import DATASETS
from attnlab.errors import AttnlabError
from attnlab.lab import EXPERIMENTS
from attnlab.options import require_at_least
from attnlab.registry import Registry
from attnlab.tasks import TASKS

COMMANDS = Registry("command", "attnlab.commands", {
    "train": f"train a task's model ({TASKS.listing()}) into a run directory",
    "eval": "evaluate a checkpoint and write metrics.json",
    "generate": "sample text from a trained language model",
    "translate": "translate sentences with a trained translation model",
    "attention-map": "draw a trained ViT's attention over images as heatmaps",
    "predict": "classify new inputs with a trained sentiment model",
    "explain": "explain a sentiment prediction through its attention",
    "explore": "write one offline HTML page to explore a trained model's attention (or --serve it)",
    "export": "write a trained model as a Hugging Face directory (GPT-2, ViT, BERT)",
    "sweep": "train a grid of configurations and tabulate the results",
    "curves": "draw learning curves of runs (a metric against time, steps or epochs) as a PNG",
    "data": f"download and unpack a data set ({DATASETS.listing()})",
    "bench": f"run a benchmark ({BENCHMARKS.listing()})",
    "lab": f"run a lab experiment ({EXPERIMENTS.listing()})",
})

HEADLINE = ("val_accuracy", "test_accuracy", "val_perplexity", "test_perplexity", "val_loss", "test_loss",
            "train_loss", "train_seconds", "steps", "epochs")


def formatter() -> type[argparse.HelpFormatter]:
    return argparse.RawDescriptionHelpFormatter


def example_epilog(example: str) -> str:
    lines = [ln.strip() for ln in example.strip().splitlines() if ln.strip()]
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {ln}" for ln in lines)


def chosen_name(argv: list[str] | None, names: list[str]) -> str | None:
    """The first argument that names one of ``names`` (the sub-choice being parsed)."""
    for arg in argv or []:
        if arg in names:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def add_dispatch(parser: argparse.ArgumentParser, argv: list[str] | None, *, dest: str, metavar: str,
                 registry: Registry, configure: Callable[[argparse.ArgumentParser, ModuleType], None] | None = None,
                 example: Callable[[str, ModuleType], str] | None = None) -> None:
    """One sub-parser per name of ``registry``; only the chosen module is imported (so listing
    names never fails, and a missing module gives a clear error only when it is asked for)."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
    chosen = chosen_name(argv, registry.names())
    for name in registry:
        help_text = registry.help[name]
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = registry.load(name)
        doc = getattr(module, "HELP", None) or help_text
        text = example(name, module) if example is not None else getattr(module, "EXAMPLE", None)
        p = sub.add_parser(name, help=help_text, description=doc, formatter_class=formatter(),
                           epilog=example_epilog(text) if text else None)
        if configure is not None:
            configure(p, module)
        elif hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(**{f"_{dest}_module": module, f"_{dest}_parser": p})


# --------------------------------------------------------------------------- task inputs as flags
def _flag_type(tp: Any) -> Any:
    """The argparse ``type`` of an inputs field: ``Path | None`` -> ``Path``, ``int | None`` -> ``int``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    return tp


def add_inputs(parser: argparse.ArgumentParser, inputs: type) -> None:
    """One ``--flag`` per field of a task's ``INPUTS`` dataclass (``data_dir`` -> ``--data-dir``)."""
    hints = typing.get_type_hints(inputs)
    for f in dataclasses.fields(inputs):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f"input_{f.name}", type=_flag_type(hints[f.name]),
                            default=f.default, metavar=f.name.upper(), help=f.metadata.get("help"))


def make_inputs(inputs: type, args: argparse.Namespace) -> Any:
    """The task's ``INPUTS`` dataclass from the flags :func:`add_inputs` defined."""
    return inputs(**{f.name: getattr(args, f"input_{f.name}") for f in dataclasses.fields(inputs)})


# --------------------------------------------------------------------------- run directories
def owned(path: Path, *, created: bool = False) -> contextlib.AbstractContextManager[Any]:
    """The run directory, owned by this process for the block (under torchrun: by rank 0)."""
    from attnlab.engine.distributed import is_main_process
    from attnlab.engine.rundir import run_directory

    return run_directory(path, created=created) if is_main_process() else contextlib.nullcontext(path)


def refuse_training_run(path: Path, option: str = "--out") -> None:
    """A command other than ``train`` never writes into a training run's directory, nor into its
    checkpoints."""
    from attnlab.engine.checkpoint import CHECKPOINTS, FILES
    from attnlab.engine.rundir import holds_training_run

    if path.is_dir() and holds_training_run(path):
        raise AttnlabError(f"{option} {path} holds a training run; choose another directory (this command "
                           "would overwrite the run's files)")
    full = path.resolve()
    inside = any(p.name == CHECKPOINTS and holds_training_run(p.parent) for p in (full, *full.parents))
    if inside or any((path / f).exists() for f in FILES):
        raise AttnlabError(f"{option} {path} is a checkpoint of a training run; choose another directory (this "
                           "command would write its files among the checkpoint's)")


def report(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` and print the run directory and the headline numbers."""
    from attnlab.engine.distributed import is_main_process
    from attnlab.files import write_json

    if not is_main_process():
        return

    clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    write_json(run_dir / "metrics.json", clean)
    shown = [k for k in HEADLINE if k in clean] or list(clean)[:6]
    parts = [f"{k} {clean[k]:.4f}" if isinstance(clean[k], float) else f"{k} {clean[k]}" for k in shown]
    print(f"run directory: {run_dir}")
    print("  " + "  ".join(parts))


def require_out_under_torchrun(out: str | None) -> None:
    if out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise AttnlabError("pass --out DIR when launching with torchrun "
                           "(every process must use the same run directory)")


def require_utf8(text: str, what: str) -> None:
    """Refuse a command-line text that is not UTF-8: such bytes reach ``argv`` as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AttnlabError(f"{what} is not UTF-8 text; pass UTF-8 text") from None


# ------------------------------------------------------------------ sampling (generate, explore)
def add_sampling_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--temperature``, ``--top-k``, ``--greedy`` and ``--seed``: how a language model samples."""
    parser.add_argument("--temperature", type=float, default=None,
                        help="> 0 samples from softmax(logits / temperature) (default: the checkpoint's "
                             "sample.temperature, 0.8); 0 is greedy")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample among the k most likely tokens (default: the checkpoint's sample.top_k, 40)")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely token (temperature 0)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0: the same text every time)")


def check_sampling(args: argparse.Namespace) -> None:
    """Reject bad sampling values before anything is loaded."""
    require_at_least(args, 0, "temperature")
    require_at_least(args, 1, "top-k")
    sampling = (args.temperature, args.top_k, getattr(args, "top_p", None))
    if args.greedy and any(value is not None for value in sampling):
        raise AttnlabError("--greedy always takes the most likely token: drop --temperature, --top-k and --top-p, "
                           "or drop --greedy to sample")
    if not 0 <= args.seed < 2**63:
        raise AttnlabError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")


def sampling_settings(args: argparse.Namespace, meta: dict[str, Any]) -> tuple[float, int | None]:
    """``(temperature, top_k)``: the command line's, else the checkpoint's ``sample`` settings."""
    from attnlab.models.gpt import SampleConfig

    sample = SampleConfig(**meta.get("config", {}).get("sample", {}))
    temperature = 0.0 if args.greedy else (args.temperature if args.temperature is not None else sample.temperature)
    return temperature, args.top_k if args.top_k is not None else sample.top_k
