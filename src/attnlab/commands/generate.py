"""``attnlab generate``: continue a prompt with a trained language model (gpt or lstm-lm).

By default it samples as training's samples do (the checkpoint's ``sample`` settings: temperature
0.8, top-k 40), seeded, so the same command prints the same text; ``--greedy`` takes the most
likely token every time. Tokens are printed as they are generated. Several prompts (``--prompt``
repeated, or ``--prompts FILE`` with one per line) are continued together as one batch
(:func:`attnlab.models.gpt.generate_batch`; each row is what that prompt alone gives), and each
continuation is printed on its own line when the batch is done.
"""

from __future__ import annotations

import argparse
import sys
import time

from attnlab.commands import add_sampling_arguments, check_sampling, sampling_settings
from attnlab.errors import AttnlabError
from attnlab.options import require_at_least

HELP = "continue a prompt with a trained DialogueGPT (or LSTM) language model"
EXAMPLE = """\
attnlab generate --checkpoint runs/gpt --prompt "ROMEO :" --num-tokens 50     # temperature 0.8, top-k 40, seed 0
attnlab generate --checkpoint runs/gpt --prompt "ROMEO :" --seed 7 --temperature 1.0
attnlab generate --checkpoint runs/gpt --prompt "ROMEO :" --greedy
attnlab generate --checkpoint runs/gpt --prompt "ROMEO :" --prompt "JULIET :" --greedy   # one batch
attnlab generate --checkpoint runs/gpt --prompts prompts.txt --num-tokens 30           # one prompt a line"""
MAX_TOKENS = 10_000  # above this, --allow-long is needed (a typo like 10**12 should not run for days)
PROGRESS_FROM = 1_000  # tokens from which a progress bar shows when stdout is not a terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory (its best checkpoint) or a checkpoints/step-* directory")
    parser.add_argument("--prompt", action="append", default=None,
                        help="text to continue (default: empty = start of a turn); unknown words become <unk>; a "
                             "prompt longer than the context keeps its end; repeat it to continue several at once")
    parser.add_argument("--prompts", metavar="FILE", default=None,
                        help="a UTF-8 text file with one prompt per line, continued together as one batch")
    parser.add_argument("--num-tokens", type=int, default=50,
                        help=f"tokens to generate (default 50; at most {MAX_TOKENS:,} without --allow-long)")
    parser.add_argument("--allow-long", action="store_true", help=f"allow more than {MAX_TOKENS:,} tokens")
    add_sampling_arguments(parser)
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this probability")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole window for every token instead of using the KV cache")


def check(args: argparse.Namespace) -> None:
    """Reject bad values before loading anything."""
    require_at_least(args, 0, "num-tokens")
    if args.num_tokens > MAX_TOKENS and not args.allow_long:
        raise AttnlabError(f"--num-tokens {args.num_tokens:,} is more than {MAX_TOKENS:,}; pass --allow-long "
                           "if you mean it")
    check_sampling(args)
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise AttnlabError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.prompt is not None and args.prompts is not None:
        raise AttnlabError("--prompt and --prompts both give prompts; pass one of them")


def prompts(args: argparse.Namespace) -> list[str]:
    """The prompts to continue: ``--prompt`` (each), the lines of ``--prompts FILE``, or one empty prompt."""
    if args.prompts is None:
        return args.prompt or [""]
    from pathlib import Path

    from attnlab.data.decoding import decode_text

    path = Path(args.prompts)
    try:
        text = decode_text(path.read_bytes(), f"--prompts {path}")
    except OSError as exc:
        raise AttnlabError(f"cannot read --prompts {path} ({exc.strerror}); pass a text file with one prompt "
                           "per line") from None
    lines = text.splitlines()
    if not lines:
        raise AttnlabError(f"--prompts {path} is empty; write one prompt per line")
    return lines


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from attnlab.data.tokenizer import MyTokenizer, prompt_ids
    from attnlab.models.gpt import iter_generate_batch
    from attnlab.tasks import load_trained
    from attnlab.threads import apply_threads

    check(args)
    texts = prompts(args)
    _, model, meta = load_trained(args.checkpoint, tasks=("gpt", "lstm-lm"), what="a language model")
    apply_threads(sum(p.numel() for p in model.parameters()))
    temperature, top_k = sampling_settings(args, meta)
    tok = MyTokenizer.from_dict(meta["tokenizer"])
    stream = meta["config"]["data"]["mode"] == "stream"
    prefixes = [prompt_ids(tok, text, stream) for text in texts]
    lines = [tok.decode(prefix) for prefix in prefixes]
    one = len(prefixes) == 1
    if one:
        print(lines[0], end="", flush=True)
    # One prompt streams to stdout; when that is a file (or for a batch), a progress bar on stderr
    # shows a long run moving.
    bar = tqdm(total=args.num_tokens, unit="token", file=sys.stderr,
               disable=(one and sys.stdout.isatty()) or args.num_tokens < PROGRESS_FROM)
    t0 = time.perf_counter()
    count = 0
    for ids in iter_generate_batch(model, prefixes, args.num_tokens, temperature=temperature, top_k=top_k,
                                   top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache):
        for i, nxt in enumerate(ids):
            word = (tok.separator if lines[i] or count else "") + tok.decode([nxt])
            lines[i] += word
            if one:
                print(word, end="", flush=True)
        count += 1
        bar.update(1)
    bar.close()
    if one:
        print(flush=True)
    else:
        print("\n".join(lines), flush=True)
    seconds = time.perf_counter() - t0
    rate = count * len(prefixes) / seconds if seconds > 0 else float("inf")
    how = "greedy" if temperature == 0 else f"temperature {temperature:g}, top-k {top_k}, seed {args.seed}"
    rows = "" if one else f" for each of {len(prefixes)} prompts"
    print(f"({count} tokens{rows} in {seconds:.2f} s, {rate:.0f} tokens/s; {how})", file=sys.stderr)
    return 0
