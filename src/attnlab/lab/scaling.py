"""``attnlab lab scaling``: why attention divides the scores by sqrt(d).

For independent q, k ~ N(mu 1, sigma^2 I) in R^d, ``q.k = sum_i q_i k_i`` is a sum of d
independent products, so (closed form)::

    E[q.k]   = d mu^2
    Var[q.k] = d ((sigma^2 + mu^2)^2 - mu^4) = d (sigma^4 + 2 mu^2 sigma^2)

The standard deviation of the scores grows like sqrt(d). Unscaled, the softmax over n keys then
saturates as d grows: its entropy falls towards 0 and its largest weight towards 1 (one key
takes everything, and the gradients through the others vanish). Dividing by sqrt(d) keeps the
scores' variance at sigma^4 (for mu = 0) whatever d is, and the softmax's entropy and largest
weight stay put. We measure both and compare with the closed form.
"""

from __future__ import annotations

import argparse
import math

import torch

from attnlab.lab._common import add_out_argument, begin, figure, label_log_x, label_log_y, plain_labels, write_results
from attnlab.options import require_at_least

HELP = "mean/variance of q.k vs the closed form as d grows; softmax entropy and max weight with/without 1/sqrt(d)"
EXAMPLE = "attnlab lab scaling --dims 4 16 64 256 1024 --samples 20000 --cases 0,1 0.5,1"
TINY_ARGS = ["--dims", "4", "16", "64", "--samples", "4000", "--trials", "50", "--keys", "16"]


def _case(text: str) -> tuple[float, float]:
    try:
        mu, sigma = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MU,SIGMA such as 0.5,1 -- got {text!r}") from None
    if sigma <= 0:
        raise argparse.ArgumentTypeError(f"sigma must be positive, got {sigma}")
    return mu, sigma


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dims", type=int, nargs="+", default=[4, 16, 64, 256, 1024],
                   help="dimensions d (default 4 16 64 256 1024)")
    p.add_argument("--samples", type=int, default=20000, help="(q, k) pairs per d (default 20000)")
    p.add_argument("--cases", type=_case, nargs="+", default=[(0.0, 1.0), (0.5, 1.0), (1.0, 0.5)],
                   metavar="MU,SIGMA", help="distributions N(mu, sigma^2 I) of q and k (default 0,1 0.5,1 1,0.5)")
    p.add_argument("--keys", type=int, default=64, help="keys per softmax (default 64)")
    p.add_argument("--trials", type=int, default=500, help="queries averaged per d for the softmax (default 500)")
    add_out_argument(p, "scaling")


def closed_form(d: int, mu: float, sigma: float) -> tuple[float, float]:
    return d * mu**2, d * (sigma**4 + 2 * mu**2 * sigma**2)


def dot_statistics(dims, cases, samples: int, g: torch.Generator) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for mu, sigma in cases:
        rows = []
        for d in dims:
            q = mu + sigma * torch.randn(samples, d, generator=g, dtype=torch.float64)
            k = mu + sigma * torch.randn(samples, d, generator=g, dtype=torch.float64)
            s = (q * k).sum(-1)  # (samples,): one q.k per pair
            mean_c, var_c = closed_form(d, mu, sigma)
            mean_e, var_e = s.mean().item(), s.var().item()
            rows.append({
                "d": d, "mean": mean_e, "mean_closed": mean_c, "var": var_e, "var_closed": var_c,
                # how many standard errors the empirical mean is from the closed form
                "mean_z": (mean_e - mean_c) / math.sqrt(var_c / samples),
                "var_rel_err": abs(var_e - var_c) / var_c,
            })
        out[f"mu={mu:g},sigma={sigma:g}"] = rows
    return out


def softmax_statistics(dims, keys: int, trials: int, g: torch.Generator) -> list[dict]:
    rows = []
    for d in dims:
        q = torch.randn(trials, 1, d, generator=g, dtype=torch.float64)
        k = torch.randn(trials, keys, d, generator=g, dtype=torch.float64)
        raw = (q * k).sum(-1)  # (trials, keys)
        row = {"d": d}
        for name, scores in (("unscaled", raw), ("scaled", raw / math.sqrt(d))):
            p = torch.softmax(scores, dim=-1)
            entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
            row[name] = {"entropy": entropy.mean().item(), "max_weight": p.max(-1).values.mean().item(),
                         "score_std": scores.std().item()}
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    started = begin(timed=False)
    require_at_least(args, 1, "dims", "trials")
    require_at_least(args, 2, "samples", "keys", why="a variance and a soft-max need two")
    dims = sorted(set(args.dims))
    g = torch.Generator().manual_seed(args.seed)
    dots = dot_statistics(dims, args.cases, args.samples, g)
    soft = softmax_statistics(dims, args.keys, args.trials, g)

    fig, axes = figure(2, 2, figsize=(12, 8.5))
    for i, (name, rows) in enumerate(dots.items()):
        c = f"C{i}"
        ds = [r["d"] for r in rows]
        axes[0, 0].semilogx(ds, [r["mean_closed"] for r in rows], "-", color=c, label=f"{name}: d mu^2")
        axes[0, 0].semilogx(ds, [r["mean"] for r in rows], "o", color=c)
        axes[0, 1].loglog(ds, [r["var_closed"] for r in rows], "-", color=c,
                          label=f"{name}: d(sigma^4 + 2 mu^2 sigma^2)")
        axes[0, 1].loglog(ds, [r["var"] for r in rows], "o", color=c)
    axes[0, 0].set_yscale("symlog", linthresh=1.0)  # mu = 0 gives means around 0
    axes[0, 0].yaxis.set_major_formatter(plain_labels(axes[0, 0].get_yticks()))
    axes[0, 0].set(title="E[q.k]: closed form (lines) vs empirical (dots)", xlabel="d", ylabel="mean of q.k")
    axes[0, 1].set(title="Var[q.k]: closed form (lines) vs empirical (dots)", xlabel="d", ylabel="variance of q.k")
    ds = [r["d"] for r in soft]
    for name, style in (("unscaled", "o-"), ("scaled", "s-")):
        label = "q.k" if name == "unscaled" else "q.k / sqrt(d)"
        axes[1, 0].semilogx(ds, [r[name]["entropy"] for r in soft], style, label=label)
        axes[1, 1].semilogx(ds, [r[name]["max_weight"] for r in soft], style, label=label)
    axes[1, 0].axhline(math.log(args.keys), color="gray", ls=":", label=f"uniform: log {args.keys}")
    axes[1, 0].set(title=f"softmax entropy over {args.keys} keys (q, k ~ N(0, I))", xlabel="d", ylabel="nats")
    axes[1, 1].set(title="largest softmax weight", xlabel="d", ylabel="max_j p_j")
    for a in axes.flat:
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)
        label_log_x(a, dims)
    label_log_y(axes[0, 1])

    big = soft[-1]
    headline = {
        "max_var_rel_err": round(max(r["var_rel_err"] for rows in dots.values() for r in rows), 4),
        "max_abs_mean_z": round(max(abs(r["mean_z"]) for rows in dots.values() for r in rows), 2),
        f"entropy_d={big['d']}": {"unscaled": round(big["unscaled"]["entropy"], 3),
                                  "scaled": round(big["scaled"]["entropy"], 3)},
        f"max_weight_d={big['d']}": {"unscaled": round(big["unscaled"]["max_weight"], 3),
                                     "scaled": round(big["scaled"]["max_weight"], 3)},
        f"entropy_d={soft[0]['d']}": {"unscaled": round(soft[0]["unscaled"]["entropy"], 3),
                                      "scaled": round(soft[0]["scaled"]["entropy"], 3)},
    }
    config = {"dims": dims, "samples": args.samples, "cases": [list(c) for c in args.cases],
              "keys": args.keys, "trials": args.trials, "seed": args.seed}
    write_results(args.out, "scaling", fig, config=config, results={"dot": dots, "softmax": soft},
                  headline=headline, started=started)
    return 0
