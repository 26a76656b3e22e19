"""The ``attnlab`` command line: one subcommand per module in ``attnlab.commands``.

Only the chosen subcommand's module is imported, so ``attnlab --help`` is fast and a
subcommand whose module is absent fails with a clear message only when it is used.
"""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys
import threading
from types import ModuleType

from attnlab import __version__
from attnlab.allocator import keep_freed_memory
from attnlab.commands import COMMANDS, add_dispatch, example_epilog, formatter
from attnlab.errors import AttnlabError
from attnlab.models.configs import decode_backend
from attnlab.native import adamw_backend, attention_backend
from attnlab.threads import wait_policy_when_torch_loads

DESCRIPTION = "attnlab: attention and Transformers from first principles in PyTorch."
EXAMPLES = """\
attnlab train toy --out runs/toy                 # seconds on a CPU; prints the run dir and accuracy
attnlab eval toy --checkpoint runs/toy
attnlab train gpt --preset tiny --set train.max_steps=40 --out runs/gpt
attnlab train gpt --list-presets
attnlab bench attention
attnlab COMMAND --help                           # every command explains itself"""


def _configure(p: argparse.ArgumentParser, module: ModuleType, rest: list[str]) -> None:
    """Let the command add its flags; dispatching commands also see the arguments after their name."""
    add = module.add_arguments
    if "argv" in inspect.signature(add).parameters:
        add(p, argv=rest)
    else:
        add(p)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The full parser for ``argv`` (only the chosen subcommand's module is imported)."""
    parser = argparse.ArgumentParser(prog="attnlab", description=DESCRIPTION, formatter_class=formatter(),
                                     epilog=example_epilog(EXAMPLES))
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    add_dispatch(parser, argv, dest="command", metavar="COMMAND", registry=COMMANDS,
                 configure=lambda p, module: _configure(p, module, argv[1:]))
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler ending a job): handled like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run ``attnlab``; returns the exit code (2 for user errors, 130 when interrupted, 143 when
    terminated by SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        args, unknown = build_parser(argv).parse_known_args(argv)
        if unknown:  # reported with the usage of the (sub)command that was chosen, not the top level's
            chosen = [v for k, v in vars(args).items() if k.startswith("_") and k.endswith("_parser")]
            max(chosen, key=lambda p: len(p.prog)).error(f"unrecognized arguments: {' '.join(unknown)}")
        wait_policy_when_torch_loads(os.environ)  # OpenMP reads it once, when torch loads (attnlab.threads)
        keep_freed_memory(os.environ)  # big tensors reuse freed memory instead of new pages (attnlab.allocator)
        decode_backend(os.environ)  # a bad ATTNLAB_DECODE stops here, not when the first sample is drawn
        attention_backend(os.environ)  # and a bad ATTNLAB_ATTENTION, not at the first forward
        adamw_backend(os.environ)  # or ATTNLAB_ADAMW, not at the first optimizer step
        return int(args._command_module.run(args) or 0)
    except AttnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `attnlab ... | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:  # a command may say what is left (train: the checkpoint)
        print(f"\n{exc or ('terminated' if isinstance(exc, Terminated) else 'interrupted')}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
