"""``attnlab lab generation``: time per generated token with and without the KV cache.

Without a cache, every new token re-runs the model over the whole sequence so far: the cost per
token grows with the length L (O(L d^2 + L^2 d) per layer). With the cache, the keys and values of
earlier positions are kept and only the new position is computed: O(d^2 + L d) per layer, so the
time per token stays nearly flat at these sizes.

Measured with the generator that ``attnlab generate`` uses,
``attnlab.models.gpt.generate(model, prefix_ids, num_tokens, *, use_cache)``, on a
:class:`~attnlab.models.gpt.DialogueGPT` with random weights (speed does not depend on the
weights), or a trained one with ``--checkpoint`` (then every L + m must fit in its context).
One call also pays for reading the prefix, so the time per token at length L is the *marginal*
cost ``(t(L, m + 1) - t(L, 1)) / m`` of m extra tokens after a length-L prefix. The greedy outputs
with and without the cache are checked to be identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from attnlab.errors import AttnlabError
from attnlab.lab._common import add_out_argument, loglog_slope, plt, write_results

HELP = "time per generated token with and without the KV cache as the sequence grows (DialogueGPT)"
EXAMPLE = "attnlab lab generation --lengths 16 64 256 1024 --tokens 16"
TINY_ARGS = ["--lengths", "8", "32", "--tokens", "4", "--dim", "32", "--layers", "1",
             "--heads", "2", "--repeats", "3", "--vocab", "64"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512, 1024],
                   help="prefix lengths L (default 16 .. 1024)")
    p.add_argument("--tokens", type=int, default=16, help="extra tokens m timed after each prefix (default 16)")
    p.add_argument("--dim", type=int, default=128, help="model width (default 128)")
    p.add_argument("--layers", type=int, default=4, help="Transformer blocks (default 4)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--vocab", type=int, default=512, help="vocabulary size (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per length (median reported)")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="time a trained `attnlab train gpt` run instead (its shape replaces --dim/--layers/"
                        "--heads/--vocab; the lengths must fit in its context)")
    add_out_argument(p, "generation")


def _model(args: argparse.Namespace, context: int):
    from attnlab.models.gpt import DialogueGPT, GPTConfig

    if args.checkpoint is not None:
        from attnlab.tasks import load_trained

        _, model, _ = load_trained(args.checkpoint, tasks=("gpt",), what="a DialogueGPT")
        c = model.config
        if context > c.context:
            raise AttnlabError(f"the longest --lengths plus --tokens + 1 is {context} positions, more than the "
                               f"context {c.context} of {args.checkpoint}; pass shorter --lengths")
        args.dim, args.layers, args.heads, args.vocab = c.dim, c.num_layers, c.num_heads, c.vocab_size
        return model
    torch.manual_seed(args.seed)
    cfg = GPTConfig(vocab_size=args.vocab, context=context, dim=args.dim, num_heads=args.heads,
                    num_layers=args.layers, mlp_dim=4 * args.dim, dropout=0.0)
    return DialogueGPT(cfg).eval()


def run(args: argparse.Namespace) -> int:
    from attnlab.measure import median
    from attnlab.models.gpt import generate

    started = time.perf_counter()
    lengths = sorted(set(args.lengths))
    if lengths[0] < 1 or args.tokens < 1 or args.repeats < 1:
        raise AttnlabError("--lengths, --tokens and --repeats must all be >= 1")
    m = args.tokens
    model = _model(args, context=lengths[-1] + m + 1)  # never outgrow the window: no jumps
    g = torch.Generator().manual_seed(args.seed)
    rows = []
    for L in lengths:
        prefix = torch.randint(3, args.vocab, (L,), generator=g).tolist()  # no special ids
        row: dict = {"L": L}
        for name, cache in (("cache", True), ("no_cache", False)):
            generate(model, prefix, 2, use_cache=cache)  # warm-up
            one, more = [], []  # interleaved: a slow moment hits both
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                generate(model, prefix, 1, use_cache=cache)
                t1 = time.perf_counter()
                generate(model, prefix, m + 1, use_cache=cache)
                t2 = time.perf_counter()
                one.append(t1 - t0)
                more.append(t2 - t1)
            # marginal cost of the m extra tokens; floored so that noise never gives <= 0
            row[f"{name}_ms_per_token"] = 1e3 * max((median(more) - median(one)) / m, 1e-9)
        row["same_tokens"] = generate(model, prefix, m, use_cache=True) == generate(model, prefix, m, use_cache=False)
        row["speedup"] = row["no_cache_ms_per_token"] / row["cache_ms_per_token"]
        rows.append(row)
        print(f"  L={L:5d}: cache {row['cache_ms_per_token']:.2f} ms/token, "
              f"no cache {row['no_cache_ms_per_token']:.2f} ms/token")
    Ls = [r["L"] for r in rows]
    slopes = {k: loglog_slope(Ls, [r[f"{k}_ms_per_token"] for r in rows]) for k in ("cache", "no_cache")}

    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.loglog(Ls, [r["no_cache_ms_per_token"] for r in rows], "o-",
              label=f"no cache: whole sequence recomputed (slope {slopes['no_cache']:.2f})")
    ax.loglog(Ls, [r["cache_ms_per_token"] for r in rows], "s-",
              label=f"KV cache: one new position (slope {slopes['cache']:.2f})")
    ax.set(title=f"DialogueGPT ({args.layers} layers, d={args.dim}): time per generated token, "
                 f"CPU ({torch.get_num_threads()} threads)", xlabel="sequence length L", ylabel="ms per token")
    ax.title.set_fontsize(9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)

    last = rows[-1]
    headline = {
        f"L={last['L']}_ms_per_token": {"cache": round(last["cache_ms_per_token"], 3),
                                        "no_cache": round(last["no_cache_ms_per_token"], 3)},
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
