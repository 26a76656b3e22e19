"""``attnlab lab generation``: time per generated token with and without the KV cache.

Without a cache, every new token re-runs the model over the whole sequence so far, so the time
per token grows with the sequence length L: about linearly at these sizes (the projections and
the MLP cost O(L d^2) per layer; the attention's O(L^2 d) takes over only when L is several
times d). With the cache, the keys and values of earlier positions are kept and only the new
position is computed: O(d^2 + L d) per layer. Its time per token therefore also grows with L,
but slowly: the O(L d) attention over the cached keys is small next to the fixed per-step work
until L reaches the thousands. The plot's legend gives the fitted slopes.

How it is measured: the model continues a random prompt of length L by m tokens, greedily, with
the same generator as ``attnlab generate``, and the clock is read as each token comes out. The
first token also reads the prompt (shown separately as "prompt"); each of the next m tokens is
one decoding step at length L + 1 .. L + m, timed on its own. The time per token at length L is
the median over those steps and the repeats, with the 25th to 75th percentiles drawn as a band.
Cached and uncached runs alternate, so a slow moment of the machine hits both, and every length
is run once untimed first. The model is a DialogueGPT with random weights (speed does not depend
on the weights), or a trained one with ``--checkpoint``. The greedy outputs with and without the
cache are checked to be identical.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from attnlab.errors import AttnlabError
from attnlab.lab._common import (
    add_out_argument,
    begin,
    figure,
    label_log_x,
    label_log_y,
    loglog_slope,
    threads,
    write_results,
)
from attnlab.options import require_at_least, require_divisible
from attnlab.vocab import START_ID

HELP = "time per generated token with and without the KV cache as the sequence grows (DialogueGPT)"
EXAMPLE = "attnlab lab generation --lengths 16 64 256 1024 --tokens 16"
TINY_ARGS = ["--lengths", "8", "32", "--tokens", "4", "--dim", "32", "--layers", "1",
             "--heads", "2", "--repeats", "3", "--vocab", "64"]
MODES = {"cache": True, "no_cache": False}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512, 1024],
                   help="prompt lengths L (default 16 .. 1024)")
    p.add_argument("--tokens", type=int, default=16, help="tokens m timed after each prompt (default 16)")
    p.add_argument("--dim", type=int, default=128, help="model width (default 128)")
    p.add_argument("--layers", type=int, default=4, help="Transformer blocks (default 4)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--vocab", type=int, default=512, help="vocabulary size (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per length and mode (default 3)")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="time a model trained with `attnlab train gpt` instead (its shape replaces --dim, "
                        "--layers, --heads and --vocab; every L + m must fit in its context)")
    add_out_argument(p, "generation")


def _model(args: argparse.Namespace, context: int):
    from attnlab.models.gpt import GPTConfig, random_gpt
    from attnlab.tasks import load_trained

    if args.checkpoint is not None:
        _, model, _ = load_trained(args.checkpoint, tasks=("gpt",), what="a DialogueGPT language model",
                                   hint="pass the run directory of an `attnlab train gpt` run")
    else:
        model = random_gpt(GPTConfig(vocab_size=args.vocab, context=context, dim=args.dim, num_heads=args.heads,
                                     num_layers=args.layers, mlp_dim=4 * args.dim, dropout=0.0), seed=args.seed)
    c = model.config
    if args.checkpoint is not None:
        if context > c.context:
            raise AttnlabError(f"the longest --lengths plus --tokens + 1 is {context} positions, more than the "
                               f"context {c.context} of {args.checkpoint}; pass shorter --lengths")
        args.dim, args.layers, args.heads, args.vocab = c.dim, c.num_layers, c.num_heads, c.vocab_size
    return model


def clock_tokens(tokens: Iterable[object], clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds from the start to the first token, then between each token and the next."""
    times = []
    last = clock()
    for _ in tokens:
        now = clock()
        times.append(now - last)
        last = now
    return times


def time_length(model, prefix: list[int], m: int, repeats: int
                ) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[int]]]:
    """``{mode: {"prompt": [s per run], "steps": [s per decoding step]}}`` for one prompt, and each
    mode's greedy tokens (from the untimed warm-up run)."""
    from attnlab.models.gpt import generate, iter_generate

    # untimed: first use of these shapes
    tokens = {name: generate(model, prefix, m + 1, use_cache=cache) for name, cache in MODES.items()}
    out: dict[str, dict[str, list[float]]] = {name: {"prompt": [], "steps": []} for name in MODES}
    for _ in range(repeats):
        for name, cache in MODES.items():  # alternate, so that a slow moment hits both modes
            times = clock_tokens(iter_generate(model, prefix, m + 1, use_cache=cache))
            out[name]["prompt"].append(times[0])
            out[name]["steps"] += times[1:]
    return out, tokens


def _ms(xs: list[float], q: float) -> float:
    return 1e3 * float(np.quantile(xs, q))


def run(args: argparse.Namespace) -> int:

    started = begin(timed=True)
    lengths = sorted(set(args.lengths))
    require_at_least(args, 1, "lengths", "tokens", "repeats", "dim", "layers", "heads")
    require_divisible(args, "dim", "heads")
    require_at_least(args, START_ID + 1, "vocab", why=f"ids 0-{START_ID} are the special tokens")
    m = args.tokens
    model = _model(args, context=lengths[-1] + m + 1)  # never outgrow the window: no jumps
    g = torch.Generator().manual_seed(args.seed)
    rows = []
    for L in lengths:
        prefix = torch.randint(3, args.vocab, (L,), generator=g).tolist()  # no special ids
        samples, tokens = time_length(model, prefix, m, args.repeats)
        row: dict = {"L": L}
        for name, s in samples.items():
            row[f"{name}_ms_per_token"] = 1e3 * statistics.median(s["steps"])
            row[f"{name}_ms_per_token_p25_p75"] = [_ms(s["steps"], 0.25), _ms(s["steps"], 0.75)]
            row[f"{name}_prompt_ms"] = 1e3 * statistics.median(s["prompt"])
            row[f"{name}_step_ms"] = [1e3 * x for x in s["steps"]]
        row["same_tokens"] = tokens["cache"][:m] == tokens["no_cache"][:m]  # greedy: the first m of the m + 1
        row["speedup"] = row["no_cache_ms_per_token"] / row["cache_ms_per_token"]
        rows.append(row)
        print(f"  L={L:5d}: cache {row['cache_ms_per_token']:.3f} ms/token, "
              f"no cache {row['no_cache_ms_per_token']:.3f} ms/token (prompt {row['cache_prompt_ms']:.2f} ms)")
    Ls = [r["L"] for r in rows]
    slopes = {k: loglog_slope(Ls, [r[f"{k}_ms_per_token"] for r in rows]) if len(Ls) > 1 else float("nan")
              for k in MODES}

    fig, axes = figure(figsize=(8, 5.2))
    ax = axes[0, 0]
    for name, marker, label in (("no_cache", "o", "no cache: whole sequence recomputed"),
                                ("cache", "s", "KV cache: one new position")):
        (line,) = ax.loglog(Ls, [r[f"{name}_ms_per_token"] for r in rows], f"{marker}-",
                            label=f"{label} (slope {slopes[name]:.2f})")
        ax.fill_between(Ls, [r[f"{name}_ms_per_token_p25_p75"][0] for r in rows],
                        [r[f"{name}_ms_per_token_p25_p75"][1] for r in rows], color=line.get_color(), alpha=0.2)
    ax.loglog(Ls, [r["cache_prompt_ms"] for r in rows], "k:", lw=1,
              label="first token: reading the length-L prompt")
    label_log_x(ax, Ls)
    label_log_y(ax)
    layers = f"{args.layers} layer{'s' if args.layers != 1 else ''}"
    ax.set(title=f"DialogueGPT ({layers}, d={args.dim}): time per generated token after a "
                 f"length-L prompt\nmedian of {m} tokens x {args.repeats} runs (band: 25-75 %), CPU ({threads()})",
           xlabel="prompt length L", ylabel="ms per token")
    ax.title.set_fontsize(10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)

    last = rows[-1]
    headline = {
        f"L={last['L']}_ms_per_token": {"cache": round(last["cache_ms_per_token"], 3),
                                        "no_cache": round(last["no_cache_ms_per_token"], 3)},
        f"L={rows[0]['L']}_ms_per_token": {"cache": round(rows[0]["cache_ms_per_token"], 3),
                                           "no_cache": round(rows[0]["no_cache_ms_per_token"], 3)},
        f"L={last['L']}_speedup": round(last["speedup"], 1),
        f"L={rows[0]['L']}_speedup": round(rows[0]["speedup"], 2),
        "slope_cache": round(slopes["cache"], 3),
        "slope_no_cache": round(slopes["no_cache"], 3),
        "greedy_outputs_identical": all(r["same_tokens"] for r in rows),
    }
    config = {"lengths": lengths, "tokens": m, "dim": args.dim, "layers": args.layers, "heads": args.heads,
              "vocab": args.vocab, "repeats": args.repeats, "seed": args.seed,
              "weights": args.checkpoint or "random"}
    write_results(args.out, "generation", fig, config=config, results={"rows": rows, "slopes": slopes},
                  headline=headline, started=started)
    return 0
