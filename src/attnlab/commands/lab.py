"""``attnlab lab NAME``: run one experiment module of ``attnlab.lab``."""

from __future__ import annotations

import argparse

HELP = "run a lab experiment (graph, vanishing, complexity, lowrank, scaling, generation, report)"
EXAMPLE = """\
attnlab lab vanishing
attnlab lab complexity --help"""

EXPERIMENTS = {
    "graph": "draw an RNN unrolled over T steps with the BPTT gradient paths",
    "vanishing": "vanishing/exploding gradients: influence of x_1 on y_T vs T",
    "complexity": "RNN vs self-attention: FLOPs, time, sequential steps, memory vs T",
    "lowrank": "SVD and Linformer attention: error vs k, time vs n",
    "scaling": "mean and variance of q.k vs d; softmax entropy with and without the 1/sqrt(d) scale",
    "generation": "time per generated token with and without the KV cache as the sequence grows",
    "report": "collect the experiments' results into one report",
}


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    from attnlab.commands import add_dispatch

    add_dispatch(parser, argv, dest="name", metavar="NAME", known=EXPERIMENTS, package="attnlab.lab",
                 kind="experiment")


def run(args: argparse.Namespace) -> int:
    return int(args._name_module.run(args) or 0)
