"""``attnlab bench generate``: KV-cache vs uncached generation of DialogueGPT, same tokens.

Both paths run :func:`attnlab.models.gpt.generate` greedily from the same prompt (default: the
start token alone) for ``--num-tokens`` new words, in interleaved rounds (see
:mod:`attnlab.measure`); the medians are compared and the two outputs must be identical
token for token (the benchmark fails otherwise). The uncached path is nanoGPT's: every new word
re-runs the model over the whole window and applies the output layer to the last position only.
With ``--checkpoint`` the trained model is used; without it, a model of the default GPT preset's
shape (context 256) with random weights (the timing depends on the shape, not on the weights;
the tokens then are gibberish, but still compared). The bar is a 5x speed-up; a miss is printed
as ``MISSED``, with the load average before and after.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from attnlab.bench._common import bar_verdict, report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, time_interleaved
from attnlab.vocab import START_ID

SPEEDUP_BAR = 5.0  # the KV cache must make greedy decoding at least this much faster

HELP = "KV-cache vs uncached generation speed of DialogueGPT (identical tokens checked)"
EXAMPLE = """\
attnlab bench generate --checkpoint runs/gpt-default
attnlab bench generate --context 256 --num-tokens 256"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="PATH", default=None,
                        help="a trained `attnlab train gpt` run (default: random weights, shape below)")
    parser.add_argument("--num-tokens", type=int, default=256, help="new words per generation (default 256)")
    parser.add_argument("--prompt", default="", help="prompt text (default: empty = the start token)")
    parser.add_argument("--context", type=int, default=256,
                        help="context of the random model (default 256, the GPT preset's)")
    parser.add_argument("--dim", type=int, default=128, help="width of the random model (default 128)")
    parser.add_argument("--layers", type=int, default=4, help="layers of the random model (default 4)")
    parser.add_argument("--heads", type=int, default=4, help="heads of the random model (default 4)")
    parser.add_argument("--vocab", type=int, default=6187,
                        help="vocabulary of the random model (default 6187, the default run's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def _model(args: argparse.Namespace) -> tuple[Any, list[int], str]:
    """The trained model of ``--checkpoint`` and the ids of ``--prompt``, or a model of the shape
    options with random weights and the start token (a random model has no tokenizer)."""
    from attnlab.data.tokenizer import MyTokenizer, prompt_ids
    from attnlab.models.gpt import GPTConfig, random_gpt
    from attnlab.tasks import load_trained

    if args.checkpoint is not None:
        _, model, meta = load_trained(args.checkpoint, tasks=("gpt",), what="a DialogueGPT language model",
                                      hint="pass the run directory of an `attnlab train gpt` run")
        stream = meta["config"]["data"]["mode"] == "stream"
        prefix = prompt_ids(MyTokenizer.from_dict(meta["tokenizer"]), args.prompt, stream)
        return model, prefix, f"trained {args.checkpoint}"
    if args.dim % args.heads:
        raise AttnlabError(f"--dim {args.dim} must be divisible by --heads {args.heads}")
    if args.prompt:
        raise AttnlabError("--prompt needs --checkpoint (a random model has no tokenizer)")
    shape = GPTConfig(vocab_size=args.vocab, context=args.context, dim=args.dim, num_heads=args.heads,
                      num_layers=args.layers, mlp_dim=4 * args.dim)
    return random_gpt(shape, seed=args.seed), [START_ID], "random weights"


def run(args: argparse.Namespace) -> int:
    from attnlab.models.gpt import generate

    if args.num_tokens < 1 or args.repeats < 1:
        raise AttnlabError("--num-tokens and --repeats must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise AttnlabError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    load = LoadWatch.start()
    model, prefix, what = _model(args)
    outputs: dict[bool, list[int]] = {}

    def path(use_cache: bool):
        def fn() -> None:
            outputs[use_cache] = generate(model, prefix, args.num_tokens, use_cache=use_cache)
        return fn

    samples = time_interleaved({"KV cache": path(True), "no cache": path(False)}, repeats=args.repeats)
    c = model.config
    print(f"greedy generation of {args.num_tokens} words after a {len(prefix)}-token prompt, {what}: "
          f"{c.num_layers} layers, dim {c.dim}, {c.num_heads} heads, context {c.context}, vocab {c.vocab_size}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'path':<10} {'s':>8} {'ms/word':>9}")
    for name, s in samples.items():
        print(f"{name:<10} {median(s):>8.3f} {1000 * median(s) / args.num_tokens:>9.2f}")
    same = outputs[True] == outputs[False]
    ratio = median(samples["no cache"]) / median(samples["KV cache"])
    print(bar_verdict("speed-up with the KV cache", ratio, SPEEDUP_BAR))
    print(f"identical tokens: {'yes' if same else 'NO'}")
    report_load(load)
    if not same:
        raise AttnlabError("the cached and uncached paths generated different tokens; this is a bug, "
                           "please report it with the command line above")
    return 0
