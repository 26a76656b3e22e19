"""One module per ``attnlab`` subcommand, plus the helpers they share.

Each command module defines ``HELP``, ``EXAMPLE``, ``add_arguments(parser)`` and
``run(args) -> int``. Modules that dispatch one level further (``train TASK``, ``bench NAME``)
accept ``add_arguments(parser, argv)`` so that only the chosen task/benchmark is imported.
A task's help shows its module docstring and generated examples (its ``EXAMPLE`` too, if any).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.tasks import load_module

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
                 known: dict[str, str], package: str, kind: str,
                 configure: Callable[[argparse.ArgumentParser, ModuleType], None] | None = None,
                 example: Callable[[str, ModuleType], str] | None = None) -> None:
    """Sub-choices ``known`` (name -> one-line help) for ``package.<name>`` modules.

    Only the chosen module is imported (so listing names never fails, and a missing module gives
    a clear "not available" error only when it is asked for).
    """
    sub = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
    chosen = chosen_name(argv, list(known))
    for name, help_text in known.items():
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = load_module(kind, name, f"{package}.{name.replace('-', '_')}", list(known))
        doc = getattr(module, "HELP", None) or (module.__doc__ or help_text).strip().splitlines()[0]
        text = example(name, module) if example is not None else getattr(module, "EXAMPLE", None)
        p = sub.add_parser(name, help=help_text, description=doc, formatter_class=formatter(),
                           epilog=example_epilog(text) if text else None)
        if configure is not None:
            configure(p, module)
        elif hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(**{f"_{dest}_module": module})


def default_run_dir(task: str, kind: str = "") -> Path:
    """``runs/<task>[-eval]-<YYYYmmdd-HHMMSS>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}{'-' + kind if kind else ''}-{stamp}"


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def report(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` and print the run directory and the headline numbers."""
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
        raise AttnlabError("pass --out DIR when launching with torchrun (every process must use the same run directory)")
