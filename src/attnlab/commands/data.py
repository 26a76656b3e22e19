"""``attnlab data fetch NAME``: download (checksum-verified, resumable) and unpack a data set."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from attnlab.data import DATASETS
from attnlab.errors import AttnlabError

EXAMPLE = """\
attnlab data fetch cifar10 --dest data
attnlab data fetch glove --vocab-size 50000 --dest data
attnlab data list"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download NAME into --dest (an interrupted download resumes)",
                           description="Download a data set, verify its checksum and unpack it into --dest.\n"
                           "An interrupted download is kept as FILE.partial and resumed by the same command;\n"
                           "a failed attempt leaves nothing else behind. Tiny Shakespeare ships with attnlab\n"
                           "and is copied, not downloaded. Offline? Download the file elsewhere and pass its\n"
                           "path to the task (--data-dir PATH, or --embeddings PATH for word vectors).",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="example:\n  attnlab data fetch cifar10 --dest data\n"
                                  "  attnlab data fetch glove --vocab-size 50000 --dest data")
    fetch.add_argument("name", choices=DATASETS.names(), metavar="NAME", help=DATASETS.listing())
    fetch.add_argument("--dest", default="data", help="directory to download into (default: ./data)")
    fetch.add_argument("--vocab-size", type=int, default=None, metavar="N",
                       help="glove only: keep the N most frequent words (the file's first N lines), written "
                            "as glove.6B.50d.topN.txt (default: all 400,000, as glove.6B.50d.txt)")
    sub.add_parser("list", help="list the data sets", description="List the data sets `attnlab data fetch` knows.",
                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog="example:\n  attnlab data list")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in DATASETS:
            print(f"{name:12s} {DATASETS.help[name]}")
        return 0
    module = DATASETS.load(args.name)
    if not hasattr(module, "fetch"):
        raise AttnlabError(f"data set '{args.name}' cannot be downloaded by attnlab; pass --data-dir PATH to the task")
    dest = Path(args.dest)
    if dest.exists() and not dest.is_dir():
        raise AttnlabError(f"--dest {dest} is a file, not a folder; pass the folder to download into")
    options = {}
    if args.vocab_size is not None:
        if "vocab_size" not in inspect.signature(module.fetch).parameters:
            raise AttnlabError(f"--vocab-size applies to glove only, not to '{args.name}'; leave it out")
        options["vocab_size"] = args.vocab_size
    print(module.fetch(dest, **options))
    return 0
