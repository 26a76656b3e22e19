"""``attnlab lab NAME``: run one experiment module of ``attnlab.lab``."""

from __future__ import annotations

import argparse

from attnlab.commands import add_dispatch
from attnlab.lab import EXPERIMENTS

EXAMPLE = """\
attnlab lab vanishing
attnlab lab complexity --help"""


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    add_dispatch(parser, argv, dest="name", metavar="NAME", registry=EXPERIMENTS)


def run(args: argparse.Namespace) -> int:
    return int(args._name_module.run(args) or 0)
