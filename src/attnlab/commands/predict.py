"""``attnlab predict``: the sentiment (label and probability) of reviews, from a trained classifier."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from attnlab.errors import AttnlabError

HELP = "classify reviews with a trained sentiment model (attnlab train text): label and probability"
EXAMPLE = 'attnlab predict --checkpoint runs/text-transformer "A warm, funny and moving film."'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory of `attnlab train text` (its best checkpoint) or a checkpoint directory")
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="review text(s); '-' or none reads one review per line from stdin. Reviews "
                             "longer than the model's max_len tokens are truncated")
    parser.add_argument("--json", action="store_true", help="print one JSON object per review")


def _read_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.texts)
    if not texts or texts == ["-"]:
        if sys.stdin.isatty():
            raise AttnlabError('no review given: pass the text, e.g. attnlab predict --checkpoint RUN "great film"')
        data = sys.stdin.buffer.read()
        texts = [line for line in data.decode("utf-8", errors="replace").splitlines()]
    return texts


def run(args: argparse.Namespace) -> int:
    from attnlab.data.sentiment import encode_texts
    from attnlab.tasks import load_trained

    _, model, meta = load_trained(args.checkpoint, tasks=("text",), what="a sentiment classifier")
    texts = _read_texts(args)
    labels = meta.get("labels", ["neg", "pos"])
    enc, _ = encode_texts(texts, meta["vocab"], meta["model"]["max_len"])
    with torch.no_grad():
        probs = torch.softmax(model(enc["ids"], enc["lengths"]).float(), dim=-1)  # (N, classes)
    for text, p in zip(texts, probs):
        k = int(p.argmax())
        if args.json:
            print(json.dumps({"label": labels[k], "probability": round(float(p[k]), 6),
                              "probabilities": {n: round(float(v), 6) for n, v in zip(labels, p)},
                              "text": text[:200]}))
        else:
            print(f"{labels[k]}\t{float(p[k]):.4f}")
    return 0
