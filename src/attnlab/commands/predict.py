"""``attnlab predict``: the sentiment (label and probability) of reviews, from a trained classifier.

Each review gets one line, ``ID<TAB>LABEL<TAB>PROBABILITY<TAB>TEXT``: the review's number (its
position among the arguments, or its line number on stdin), the predicted label, its probability
and the review's first characters, so that each answer can be told apart. ``--json`` prints one
JSON object per review instead, with the same ``id``.
"""

from __future__ import annotations

import argparse
import json
import sys

from attnlab.commands import require_utf8
from attnlab.errors import AttnlabError

HELP = ("classify reviews with a trained sentiment model (attnlab train text); prints one line per review:\n"
        "ID<TAB>LABEL<TAB>PROBABILITY<TAB>TEXT, ID being the argument's position or the line number on stdin")
EXAMPLE = """\
attnlab predict --checkpoint runs/text-transformer "A warm, funny and moving film." "Dull."
cat reviews.txt | attnlab predict --checkpoint runs/text-transformer --json"""
SHOWN = 60  # characters of each review printed beside its prediction
PART = 1024  # reviews encoded, classified and printed at a time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory of `attnlab train text` (its best checkpoint) or a checkpoint directory")
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="review text(s); '-' or none reads one review per line (UTF-8) from stdin, blank "
                             "lines skipped. Reviews longer than the model's max_len tokens are truncated")
    parser.add_argument("--json", action="store_true", help="print one JSON object per review")


def _read_texts(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(id, review) pairs: the argument's position, or the line number on stdin."""
    from attnlab.data.decoding import decode_text

    texts = list(args.texts)
    if texts and texts != ["-"]:
        for i, text in enumerate(texts, start=1):
            require_utf8(text, f"review argument {i}")
        return list(enumerate(texts, start=1))
    if sys.stdin.isatty():
        raise AttnlabError('no review given: pass the text, e.g. attnlab predict --checkpoint RUN "great film"')
    lines = decode_text(sys.stdin.buffer.read(), "stdin").splitlines()
    reviews = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not reviews:
        raise AttnlabError('stdin holds no review (it is empty or blank); pipe one review per line, e.g. '
                           'echo "great film" | attnlab predict --checkpoint RUN, or pass the text as an argument')
    return reviews


def _shown(text: str) -> str:
    """The review on one line (whitespace runs, tabs included, become one space), cut to SHOWN characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN else flat[:SHOWN - 3] + "..."


def run(args: argparse.Namespace) -> int:
    import torch  # here, not at the top: `predict --help` answers without it

    from attnlab.data.imdb import LABELS
    from attnlab.data.sentiment import encode_texts
    from attnlab.data.wordpiece import of_meta
    from attnlab.models.text import predict_logits
    from attnlab.tasks import load_trained

    _, model, meta = load_trained(args.checkpoint, tasks=("text",), what="a sentiment classifier")
    reviews = _read_texts(args)
    labels = meta.get("labels", list(LABELS))
    if of_meta(meta) is None and meta.get("vocab") is None:  # a pretrained directory that ships no tokenizer
        raise AttnlabError(f"{args.checkpoint} holds no tokenizer (vocab.txt or tokenizer.json), so a text cannot be "
                           "read; copy the model's tokenizer files into it")
    for start in range(0, len(reviews), PART):
        part = reviews[start:start + PART]
        texts, max_len = [text for _, text in part], meta["config"]["model"]["max_len"]
        wordpiece = of_meta(meta)  # a BERT reads with its own WordPiece
        enc = (wordpiece.tensors(texts, max_len) if wordpiece is not None
               else encode_texts(texts, meta["vocab"], max_len)[0])
        probs = torch.softmax(predict_logits(model, enc), dim=-1)  # (n, classes), in batches
        for (i, text), p in zip(part, probs):
            k = int(p.argmax())
            if args.json:
                print(json.dumps({"id": i, "label": labels[k], "probability": round(float(p[k]), 6),
                                  "probabilities": {n: round(float(v), 6) for n, v in zip(labels, p)},
                                  "text": text[:200]}))
            else:
                print(f"{i}\t{labels[k]}\t{float(p[k]):.4f}\t{_shown(text)}")
        sys.stdout.flush()  # a reader that left (`| head -1`) stops the work here: BrokenPipeError, a quiet exit
    return 0
