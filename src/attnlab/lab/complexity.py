"""``attnlab lab complexity``: an RNN layer vs a self-attention layer as the sequence grows.

At a fixed width d, an RNN layer costs O(T d^2) in T *sequential* steps (each state needs the
previous one); self-attention costs O(T d^2 + T^2 d) but computes all positions at once (one
sequential step). For one sequence of length T we measure:

* forward FLOPs, counted by PyTorch's ``FlopCounterMode`` from the shapes alone (exact,
  deterministic, and instant even at T = 16,384);
* forward wall time on this CPU (median of interleaved runs), for PyTorch's fused attention
  kernel and, up to ``--explicit-max``, for the explicit path that builds the T x T weights;
* peak memory allocated by PyTorch during the forward pass (tensors that existed before it,
  such as the weights and the input, do not count).

Log-log slopes are fitted over all lengths. The FLOP slopes are 1 for the RNN and just under 2
for attention, whose linear projections still weigh in at short lengths.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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
from attnlab.measure import median, peak_memory_bytes, time_interleaved
from attnlab.options import require_at_least, require_divisible

HELP = "FLOPs, wall time, sequential steps and peak memory of an RNN layer vs a self-attention layer as T grows"
EXAMPLE = "attnlab lab complexity --lengths 64 256 1024 4096 16384 --dim 64"
TINY_ARGS = ["--lengths", "32", "64", "128", "256", "--dim", "16", "--heads", "2", "--repeats", "1",
             "--explicit-max", "128"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096, 16384],
                   help="sequence lengths T (default 64 256 1024 4096 16384)")
    p.add_argument("--dim", type=int, default=64, help="layer width d (default 64)")
    p.add_argument("--heads", type=int, default=4, help="attention heads; head_dim = dim / heads (default 4)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per length; the median is reported (default 3)")
    p.add_argument("--explicit-max", type=int, default=2048,
                   help="longest T for the explicit (T x T weights) attention path (default 2048)")
    add_out_argument(p, "complexity")


def _layers(dim: int, heads: int) -> tuple[nn.Module, nn.Module]:
    from attnlab.layers import MultiHeadedAttention

    return nn.RNN(dim, dim, batch_first=True), MultiHeadedAttention(dim, heads, dim // heads)


def count_flops(dim: int, heads: int, T: int) -> tuple[int, int]:
    """Forward FLOPs of (RNN layer, self-attention layer) on one length-T sequence."""
    with torch.device("meta"):
        rnn, attn = _layers(dim, heads)
        x = torch.empty(1, T, dim)
        counts = []
        for layer in (lambda: rnn(x), lambda: attn(x)):
            with FlopCounterMode(display=False) as fc:
                layer()
            counts.append(fc.get_total_flops())
    return counts[0], counts[1]


def run(args: argparse.Namespace) -> int:
    started = begin(timed=True)
    require_at_least(args, 1, "lengths", "dim", "heads", "repeats")
    require_at_least(args, 0, "explicit-max")
    require_divisible(args, "dim", "heads")
    if len(set(args.lengths)) < 2:
        raise AttnlabError("--lengths needs at least two different lengths to fit a slope")
    lengths = sorted(args.lengths)
    torch.manual_seed(args.seed)
    rnn, attn = _layers(args.dim, args.heads)
    rows = []
    for T in lengths:
        f_rnn, f_attn = count_flops(args.dim, args.heads, T)
        x = torch.randn(1, T, args.dim)
        fns = {"rnn": lambda: rnn(x), "attention": lambda: attn(x)}
        if T <= args.explicit_max:
            fns["attention_explicit"] = lambda: attn(x, need_weights=True)
        with torch.no_grad():
            samples = time_interleaved(fns, repeats=args.repeats, warmup=1)
            mem = {k: peak_memory_bytes(fn) for k, fn in fns.items()}
        rows.append({
            "T": T, "flops_rnn": f_rnn, "flops_attention": f_attn,
            "seconds": {k: median(v) for k, v in samples.items()},
            "peak_mib": {k: v / 2**20 for k, v in mem.items()},
            "sequential_steps": {"rnn": T, "attention": 1},
        })
    Ts = [r["T"] for r in rows]
    slopes = {
        "flops_rnn": loglog_slope(Ts, [r["flops_rnn"] for r in rows]),
        "flops_attention": loglog_slope(Ts, [r["flops_attention"] for r in rows]),
        "flops_attention_last_two": loglog_slope(Ts[-2:], [r["flops_attention"] for r in rows[-2:]]),
        "time_rnn": loglog_slope(Ts, [r["seconds"]["rnn"] for r in rows]),
        "time_attention": loglog_slope(Ts, [r["seconds"]["attention"] for r in rows]),
        # at short lengths fixed per-call costs dominate the wall time; the longest two show the trend
        "time_rnn_last_two": loglog_slope(Ts[-2:], [r["seconds"]["rnn"] for r in rows[-2:]]),
        "time_attention_last_two": loglog_slope(Ts[-2:], [r["seconds"]["attention"] for r in rows[-2:]]),
    }

    fig, axes = figure(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    ax.loglog(Ts, [r["flops_rnn"] for r in rows], "o-", label=f"RNN (slope {slopes['flops_rnn']:.2f})")
    ax.loglog(Ts, [r["flops_attention"] for r in rows], "s-",
              label=f"self-attention (slope {slopes['flops_attention']:.2f})")
    ax.set(title="forward FLOPs (FlopCounterMode)", xlabel="T", ylabel="FLOPs")
    ax = axes[0, 1]
    ax.loglog(Ts, [r["seconds"]["rnn"] for r in rows], "o-", label=f"RNN (slope {slopes['time_rnn']:.2f})")
    ax.loglog(Ts, [r["seconds"]["attention"] for r in rows], "s-",
              label=f"attention, fused (slope {slopes['time_attention']:.2f})")
    ex = [r for r in rows if "attention_explicit" in r["seconds"]]
    if ex:
        ax.loglog([r["T"] for r in ex], [r["seconds"]["attention_explicit"] for r in ex], "^--",
                  label="attention, explicit T x T")
    ax.set(title=f"forward wall time, CPU ({threads()})", xlabel="T", ylabel="seconds")
    ax = axes[1, 0]
    ax.loglog(Ts, Ts, "o-", label="RNN: T steps (h_t needs h_(t-1))")
    ax.loglog(Ts, [1] * len(Ts), "s-", label="attention: 1 step (all positions at once)")
    ax.set(title="sequential steps", xlabel="T", ylabel="steps")
    ax = axes[1, 1]
    for key, style in (("rnn", "o-"), ("attention", "s-"), ("attention_explicit", "^--")):
        pts = [(r["T"], r["peak_mib"][key]) for r in rows if key in r["peak_mib"] and r["peak_mib"][key] > 0]
        if pts:
            ax.loglog(*zip(*pts), style, label=key.replace("_", ", "))
    ax.set(title="peak CPU allocator memory, forward", xlabel="T", ylabel="MiB")
    for a in axes.flat:
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
        label_log_x(a, Ts)
        label_log_y(a)
    fig.suptitle(f"RNN layer vs self-attention layer, width d={args.dim}, {args.heads} heads, batch 1")

    last = rows[-1]
    headline = {
        "flop_slope_rnn": round(slopes["flops_rnn"], 3),
        "flop_slope_attention": round(slopes["flops_attention"], 3),
        "time_slope_rnn": round(slopes["time_rnn"], 3),
        "time_slope_attention": round(slopes["time_attention"], 3),
        "time_slope_last_two": {"rnn": round(slopes["time_rnn_last_two"], 3),
                                "attention": round(slopes["time_attention_last_two"], 3)},
        f"T={last['T']}_seconds": {k: float(f"{v:.4g}") for k, v in last["seconds"].items()},
        f"T={last['T']}_flops": {"rnn": last["flops_rnn"], "attention": last["flops_attention"]},
        f"T={last['T']}_peak_mib": {k: round(v, 2) for k, v in last["peak_mib"].items()},
    }
    config = {"lengths": lengths, "dim": args.dim, "heads": args.heads, "repeats": args.repeats,
              "explicit_max": args.explicit_max, "batch": 1, "seed": args.seed}
    write_results(args.out, "complexity", fig, config=config, results={"rows": rows, "slopes": slopes},
                  headline=headline, started=started)
    return 0
