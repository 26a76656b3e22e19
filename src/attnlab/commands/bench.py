"""``attnlab bench NAME``: run one benchmark module of ``attnlab.bench``."""

from __future__ import annotations

import argparse

HELP = "run a benchmark (attention, gpt, vit, generate) and print its table"
EXAMPLE = """\
attnlab bench attention
attnlab bench attention --help"""

BENCHMARKS = {
    "attention": "MultiHeadedAttention vs torch.nn.MultiheadAttention: time and peak memory",
    "gpt": "training tokens/s of DialogueGPT vs Hugging Face GPT-2 of identical size",
    "vit": "training images/s of our ViT vs Hugging Face ViT of identical size",
    "generate": "KV-cache vs uncached generation speed of DialogueGPT (identical tokens checked)",
}


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    from attnlab.commands import add_dispatch

    add_dispatch(parser, argv, dest="name", metavar="NAME", known=BENCHMARKS, package="attnlab.bench",
                 kind="benchmark")


def run(args: argparse.Namespace) -> int:
    return int(args._name_module.run(args) or 0)
