"""``attnlab data fetch NAME``: download (checksum-verified, resumable) and unpack a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.tasks import load_module

HELP = "download and unpack a data set (imdb, cifar10, shakespeare), or list them"
EXAMPLE = """\
attnlab data fetch cifar10 --dest data
attnlab data list"""

DATASETS = {
    "imdb": "IMDB movie reviews (sentiment, 50k reviews)",
    "cifar10": "CIFAR-10 images (60k 32x32, 10 classes)",
    "shakespeare": "Tiny Shakespeare (1 MB of plays; a copy ships with attnlab)",
}


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download NAME into --dest (resumes a partial download)",
                           description="Download a data set, verify its checksum and unpack it. Offline? "
                           "Download the file elsewhere and pass --data-dir PATH to the task instead.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="example:\n  attnlab data fetch cifar10 --dest data")
    fetch.add_argument("name", choices=list(DATASETS), metavar="NAME", help=", ".join(DATASETS))
    fetch.add_argument("--dest", default="data", help="directory to download into (default: ./data)")
    sub.add_parser("list", help="list the data sets")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, text in DATASETS.items():
            print(f"{name:12s} {text}")
        return 0
    module = load_module("data set", args.name, f"attnlab.data.{args.name}", list(DATASETS))
    if not hasattr(module, "fetch"):
        raise AttnlabError(f"data set '{args.name}' cannot be downloaded by attnlab; pass --data-dir PATH to the task")
    path = module.fetch(Path(args.dest))
    print(path)
    return 0
