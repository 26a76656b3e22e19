"""``attnlab bench NAME``: run one benchmark module of ``attnlab.bench``."""

from __future__ import annotations

import argparse

from attnlab.bench import BENCHMARKS
from attnlab.commands import add_dispatch

EXAMPLE = """\
attnlab bench attention
attnlab bench attention --help"""


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    add_dispatch(parser, argv, dest="name", metavar="NAME", registry=BENCHMARKS)


def run(args: argparse.Namespace) -> int:
    return int(args._name_module.run(args) or 0)
