"""``attnlab lab lowrank``: low-rank attention (SVD, Linformer): error vs k, and time vs n.

Error: one self-attention layer with random weights is run on n tokens exactly, and in three
approximate ways:

* SVD attention of rank k: the best rank-k approximation of each head's attention matrix;
* Linformer with projected length k, its projections E = F set to averages over k equal
  segments of the sequence (exact for a sequence that is constant on each segment);
* Linformer with untrained random E and F (its initialisation: training is what makes them
  useful);

on two inputs: a *smooth* sequence (slowly varying tokens, like neighbouring image patches or
audio frames) and independent random tokens. The error is ``||out - exact|| / ||exact||``.

Time: the forward time of full attention (PyTorch's fused kernel) vs Linformer with a fixed k as
n grows. The crossover is the length beyond which Linformer is faster on this machine,
interpolated on log-log axes between the measured lengths.
"""

from __future__ import annotations

import argparse
import math

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
from attnlab.measure import median, time_interleaved
from attnlab.options import require_at_least, require_divisible

HELP = "SVD and Linformer attention: approximation error vs k, and time vs n with the crossover length"
EXAMPLE = "attnlab lab lowrank --n 256 --ks 4 8 16 32 64 128 256 --lengths 256 512 1024 2048 4096 8192"
TINY_ARGS = ["--n", "32", "--ks", "4", "8", "16", "32", "--dim", "16", "--heads", "2",
             "--lengths", "64", "128", "256", "--time-k", "16", "--repeats", "1"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=256, help="sequence length for the error curves (default 256)")
    p.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256],
                   help="ranks / projected lengths k (default 4 8 .. 256)")
    p.add_argument("--dim", type=int, default=64, help="model width (default 64)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192],
                   help="sequence lengths n for the timing (default 256 .. 8192)")
    p.add_argument("--time-k", type=int, default=128, help="Linformer k for the timing (default 128)")
    p.add_argument("--batch", type=int, default=4, help="batch size for the timing (default 4)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per length; the median is reported (default 3)")
    add_out_argument(p, "lowrank")


def _inputs(n: int, dim: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]  # (n, 1)
    freqs = torch.rand(1, dim, generator=g, dtype=torch.float64) * 3
    phase = torch.rand(1, dim, generator=g, dtype=torch.float64) * 2 * math.pi
    smooth = (2 * torch.sin(2 * math.pi * freqs * t + phase))[None]  # (1, n, dim)
    return {"smooth": smooth, "random": torch.randn(1, n, dim, generator=g, dtype=torch.float64)}


def error_curves(n: int, ks: list[int], dim: int, heads: int, seed: int) -> dict[str, dict[str, list[float]]]:
    from attnlab.attention import merge_heads, split_heads
    from attnlab.layers import MultiHeadedAttention
    from attnlab.lowrank import LinformerAttention, mean_pool_projection, svd_attention

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    full = MultiHeadedAttention(dim, heads, dim // heads).double().eval()
    curves: dict[str, dict[str, list[float]]] = {}
    for name, x in _inputs(n, dim, g).items():
        with torch.no_grad():
            exact, _ = full(x, need_weights=True)
            q, k_, v = split_heads(full.qkv(x), 3, heads)  # each (1, H, n, hd)
            res: dict[str, list[float]] = {"svd": [], "linformer_pool": [], "linformer_random": []}
            for k in ks:
                o, _ = svd_attention(q, k_, v, k)  # (1, H, n, hd)
                out = full.W_O(merge_heads(o))  # (1, n, dim)
                res["svd"].append(_rel(out, exact))
                torch.manual_seed(seed + k)
                lin = LinformerAttention(dim=dim, num_heads=heads, seq_len=n, k=k).double().eval()
                lin.qkv.load_state_dict(full.qkv.state_dict())
                lin.W_O.load_state_dict(full.W_O.state_dict())
                res["linformer_random"].append(_rel(lin(x)[0], exact))
                lin.E.copy_(mean_pool_projection(k, n, dtype=torch.float64))
                lin.F.copy_(mean_pool_projection(k, n, dtype=torch.float64))
                res["linformer_pool"].append(_rel(lin(x)[0], exact))
        curves[name] = res
    return curves


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()


def timing(lengths: list[int], k: int, dim: int, heads: int, batch: int, repeats: int) -> list[dict]:
    from attnlab.layers import MultiHeadedAttention
    from attnlab.lowrank import LinformerAttention

    full = MultiHeadedAttention(dim, heads, dim // heads).eval()
    lin = LinformerAttention(dim=dim, num_heads=heads, seq_len=max(lengths), k=k).eval()
    rows = []
    with torch.no_grad():
        for n in lengths:
            x = torch.randn(batch, n, dim)
            s = time_interleaved({"full": lambda: full(x), "linformer": lambda: lin(x)}, repeats=repeats, warmup=1)
            rows.append({"n": n, "full_s": median(s["full"]), "linformer_s": median(s["linformer"])})
    return rows


def crossover(rows: list[dict]) -> float | None:
    """Smallest n beyond which Linformer stays faster, interpolated in log-log; None if never."""
    faster = [r["linformer_s"] < r["full_s"] for r in rows]
    if not faster[-1]:
        return None
    i = len(rows) - 1
    while i > 0 and faster[i - 1]:
        i -= 1
    if i == 0:
        return float(rows[0]["n"])  # already faster at the shortest length measured
    a, b = rows[i - 1], rows[i]
    # log ratio full/linformer goes from <= 0 (at a) to > 0 (at b): find its zero in log n.
    ra, rb = math.log(a["full_s"] / a["linformer_s"]), math.log(b["full_s"] / b["linformer_s"])
    la, lb = math.log(a["n"]), math.log(b["n"])
    return float(math.exp(la + (lb - la) * (0 - ra) / (rb - ra)))


def run(args: argparse.Namespace) -> int:
    started = begin(timed=True)
    require_at_least(args, 1, "n", "ks", "dim", "heads", "lengths", "time-k", "batch", "repeats")
    require_divisible(args, "dim", "heads")
    ks = sorted(set(args.ks))
    if ks[-1] > args.n:
        raise AttnlabError(f"every --ks value must be in [1, --n={args.n}], got {args.ks}")
    if args.time_k > min(args.lengths):
        raise AttnlabError(f"--time-k {args.time_k} must not exceed the shortest --lengths value {min(args.lengths)}")
    lengths = sorted(args.lengths)
    curves = error_curves(args.n, ks, args.dim, args.heads, args.seed)
    rows = timing(lengths, args.time_k, args.dim, args.heads, args.batch, args.repeats)
    cross = crossover(rows)
    ns = [r["n"] for r in rows]
    slopes = {"full": loglog_slope(ns, [r["full_s"] for r in rows]),
              "linformer": loglog_slope(ns, [r["linformer_s"] for r in rows])}

    fig, axes = figure(1, 2, figsize=(13, 5))
    axes = axes[0]
    ax = axes[0]
    styles = {"svd": "o-", "linformer_pool": "s-", "linformer_random": "^:"}
    colors = {"smooth": "tab:blue", "random": "tab:orange"}
    for inp, res in curves.items():
        for method, errs in res.items():
            pts = [(k, max(e, 1e-17)) for k, e in zip(ks, errs)]  # exact zeros drawn at the floor
            ax.semilogy(*zip(*pts), styles[method], color=colors[inp], label=f"{method}, {inp} input")
    ax.set_xscale("log", base=2)
    label_log_x(ax, ks)
    label_log_y(ax)
    ax.set(title=f"relative error vs exact attention, n={args.n}", xlabel="k (rank / projected length)",
           ylabel="||out - exact|| / ||exact||")
    ax = axes[1]
    ax.loglog(ns, [r["full_s"] for r in rows], "o-", label=f"full attention, fused (slope {slopes['full']:.2f})")
    ax.loglog(ns, [r["linformer_s"] for r in rows], "s-",
              label=f"Linformer k={args.time_k} (slope {slopes['linformer']:.2f})")
    if cross is not None:
        ax.axvline(cross, color="gray", ls="--", label=f"crossover n ~ {cross:.0f}")
    label_log_x(ax, ns)
    label_log_y(ax)
    ax.set(title=f"forward time, batch {args.batch}, d={args.dim}, CPU ({threads()})",
           xlabel="n", ylabel="seconds")
    for a in axes:
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)

    def at(inp: str, method: str) -> dict:
        return {str(k): float(f"{e:.3g}") for k, e in zip(ks, curves[inp][method])}

    headline = {
        "svd_error_smooth": at("smooth", "svd"),
        "linformer_pool_error_smooth": at("smooth", "linformer_pool"),
        "linformer_pool_error_random": at("random", "linformer_pool"),
        "linformer_random_error_smooth": at("smooth", "linformer_random"),
        "crossover_n": None if cross is None else round(cross),
        f"n={ns[-1]}_speedup_linformer": round(rows[-1]["full_s"] / rows[-1]["linformer_s"], 2),
        "time_slope_full": round(slopes["full"], 3),
        "time_slope_linformer": round(slopes["linformer"], 3),
    }
    config = {"n": args.n, "ks": ks, "dim": args.dim, "heads": args.heads, "lengths": lengths,
              "time_k": args.time_k, "batch": args.batch, "repeats": args.repeats, "seed": args.seed}
    write_results(args.out, "lowrank", fig, config=config,
                  results={"errors": curves, "timing": rows, "crossover_n": cross, "time_slopes": slopes},
                  headline=headline, started=started)
    return 0
