"""``attnlab translate``: translate sentences with a trained ``attnlab train translate`` run.

The sentences come from the command line (one argument each) or, without any, from stdin (one
per line). Each is split into the run's BPE pieces; a sentence longer than the model's
``max_len`` pieces keeps its first ``max_len`` (a note on stderr says so). Beam search uses the
run's ``decode.beam`` and ``decode.length_penalty`` unless ``--beam`` / ``--length-penalty`` say
otherwise (``--beam 1``: greedy). Translations go to stdout, one line per sentence.
"""

from __future__ import annotations

import argparse
import sys
import time

from attnlab.commands import require_utf8
from attnlab.errors import AttnlabError
from attnlab.options import require_at_least

HELP = "translate sentences with a trained translation model (attnlab train translate)"
EXAMPLE = """\
attnlab translate --checkpoint runs/translate-transformer "I am cold." "Where is the station?"
echo "I am cold." | attnlab translate --checkpoint runs/translate-transformer --beam 1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="*", help="sentences to translate (default: one per line from stdin)")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory (its best checkpoint) or a checkpoints/step-* directory")
    parser.add_argument("--beam", type=int, default=None, metavar="N",
                        help="beam width (default: the run's decode.beam; 1 = greedy)")
    parser.add_argument("--length-penalty", type=float, default=None, metavar="A",
                        help="GNMT length normalisation alpha (default: the run's decode.length_penalty)")
    parser.add_argument("--max-len", type=int, default=None, metavar="N",
                        help="at most N output pieces per sentence (default: the model's max_len + 1)")


def check(args: argparse.Namespace) -> None:
    """Reject bad values before loading anything."""
    require_at_least(args, 1, "beam", why="1 = greedy")
    require_at_least(args, 1, "max-len")
    require_at_least(args, 0, "length-penalty")
    for text in args.text:
        require_utf8(text, "the text")


def run(args: argparse.Namespace) -> int:
    from attnlab.data.bpe import BPETokenizer
    from attnlab.models.decoding_seq2seq import translate_ids
    from attnlab.tasks import load_trained

    check(args)
    texts = list(args.text) or [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        raise AttnlabError("nothing to translate; pass the sentences as arguments or one per line on stdin")
    _, model, meta = load_trained(args.checkpoint, tasks=("translate",), what="a translation model")
    tokenizers = meta["tokenizer"]
    source = BPETokenizer.from_json(tokenizers["source"])
    target = source if tokenizers.get("shared") else BPETokenizer.from_json(tokenizers["target"])
    cfg = meta["config"]
    max_len = int(cfg["model"]["max_len"])
    beam = args.beam or int(cfg["decode"]["beam"])
    alpha = args.length_penalty if args.length_penalty is not None else float(cfg["decode"]["length_penalty"])
    sources = source.encode_batch(texts)
    for i, ids in enumerate(sources):
        if len(ids) > max_len:
            print(f"note: sentence {i + 1} has {len(ids)} pieces; the model reads the first {max_len} "
                  f"(its max_len): {source.decode(ids[:max_len])!r}", file=sys.stderr)
            sources[i] = ids[:max_len]
    started = time.perf_counter()
    found = translate_ids(model, sources, bos=target.token_id("<s>"), eos=target.token_id("</s>"),
                          pad=target.token_id("<pad>"), max_len=args.max_len or max_len + 1, beam=beam,
                          length_penalty=alpha)
    for ids in found:
        print(target.decode(ids), flush=True)
    seconds = time.perf_counter() - started
    how = "greedy" if beam == 1 else f"beam {beam}, length penalty {alpha:g}"
    print(f"({len(texts)} sentence(s) in {seconds:.2f} s; {how})", file=sys.stderr)
    return 0
