"""``attnlab data fetch NAME``: download (checksum-verified, resumable) and unpack a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from attnlab.data import DATASETS
from attnlab.errors import AttnlabError

EXAMPLE = """\
attnlab data fetch cifar10 --dest data
attnlab data list"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download NAME into --dest (resumes a partial download)",
                           description="Download a data set, verify its checksum and unpack it. Offline? "
                           "Download the file elsewhere and pass --data-dir PATH to the task instead.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="example:\n  attnlab data fetch cifar10 --dest data")
    fetch.add_argument("name", choices=DATASETS.names(), metavar="NAME", help=DATASETS.listing())
    fetch.add_argument("--dest", default="data", help="directory to download into (default: ./data)")
    sub.add_parser("list", help="list the data sets")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in DATASETS:
            print(f"{name:12s} {DATASETS.help[name]}")
        return 0
    module = DATASETS.load(args.name)
    if not hasattr(module, "fetch"):
        raise AttnlabError(f"data set '{args.name}' cannot be downloaded by attnlab; pass --data-dir PATH to the task")
    print(module.fetch(Path(args.dest)))
    return 0
