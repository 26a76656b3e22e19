"""``attnlab generate``: continue a prompt with a trained language model (gpt or lstm-lm)."""

from __future__ import annotations

import argparse
import sys
import time

from attnlab.errors import AttnlabError

HELP = "continue a prompt with a trained DialogueGPT (or LSTM) language model"
EXAMPLE = 'attnlab generate --checkpoint runs/gpt-default --prompt "ROMEO: what light" --num-tokens 50'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory (its best checkpoint) or a checkpoints/step-* directory")
    parser.add_argument("--prompt", default="", help="text to continue (default: empty = start of a turn); "
                        "unknown words become <unk>; a prompt longer than the context keeps its end")
    parser.add_argument("--num-tokens", type=int, default=50, help="words to generate (default 50)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 = greedy (default); > 0 samples from softmax(logits / temperature)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely words")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this probability")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible samples)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole window for every word instead of using the KV cache")


def run(args: argparse.Namespace) -> int:
    from attnlab.data.tokenizer import MyTokenizer
    from attnlab.models.gpt import generate
    from attnlab.tasks import load_trained

    if args.num_tokens < 0:
        raise AttnlabError(f"--num-tokens must be >= 0, got {args.num_tokens}")
    if args.temperature < 0:
        raise AttnlabError(f"--temperature must be >= 0, got {args.temperature}")
    _, model, meta = load_trained(args.checkpoint, tasks=("gpt", "lstm-lm"), what="a language model")
    tok = MyTokenizer.from_dict(meta["tokenizer"])
    prefix = tok.encode(args.prompt)
    t0 = time.perf_counter()
    ids = generate(model, prefix, args.num_tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache)
    seconds = time.perf_counter() - t0
    print(tok.decode(prefix + ids))
    rate = len(ids) / seconds if seconds > 0 else float("inf")
    print(f"({len(ids)} words in {seconds:.2f} s, {rate:.0f} words/s)", file=sys.stderr)
    return 0
