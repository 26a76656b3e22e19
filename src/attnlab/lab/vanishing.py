"""``attnlab lab vanishing``: how much the first input x_1 still moves the output y_T, as T grows.

For a linear RNN (psi = identity), ``h_T = sum_t W_hh^(T-t) W_hx x_t``, so
``d o_T / d x_1 = W_yh W_hh^(T-1) W_hx``: the influence of the first input on the last output
scales like ``rho(W_hh)^(T-1)``, where rho is the spectral radius of ``W_hh`` (its largest
eigenvalue in absolute value). It vanishes for rho < 1 and explodes for rho > 1. We measure
``||d o_T / d x_1||`` (Frobenius norm; ``o_T`` is y_T before the softmax) with autograd for
several rho, check it against that closed form, and fit the growth per step, which approaches
rho. The right-hand plot repeats this with psi = tanh, whose saturation can only shrink it.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from attnlab.errors import AttnlabError
from attnlab.lab._common import add_out_argument, begin, figure, write_results
from attnlab.lab.rnn import ElmanRNN
from attnlab.options import require_at_least, require_positive

HELP = "influence of x_1 on y_T vs T for several spectral radii of W_hh (vanishing/exploding gradients)"
EXAMPLE = "attnlab lab vanishing --max-steps 60 --radii 0.5 0.9 1.0 1.1"
TINY_ARGS = ["--max-steps", "12", "--radii", "0.5", "1.2"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=int, default=60, help="longest sequence T (default 60)")
    p.add_argument("--radii", type=float, nargs="+", default=[0.5, 0.8, 0.9, 1.0, 1.1, 1.25],
                   help="spectral radii of W_hh to try (default 0.5 0.8 0.9 1.0 1.1 1.25)")
    p.add_argument("--hidden", type=int, default=4, help="hidden size n_h (default 4)")
    add_out_argument(p, "vanishing")


def with_spectral_radius(W: torch.Tensor, rho: float) -> torch.Tensor:
    return W * (rho / torch.linalg.eigvals(W).abs().max())


def influence(model: ElmanRNN, xs: torch.Tensor) -> list[float]:
    """``||d o_T / d x_1||_F`` for every prefix length T = 1..len(xs), by autograd."""
    xs = xs.clone().requires_grad_(True)
    _, hs = model.states(xs)
    os_ = hs @ model.W_yh.T  # (T, n_y)
    out = []
    for T in range(xs.size(0)):
        rows = [torch.autograd.grad(os_[T, j], xs, retain_graph=True)[0][0] for j in range(os_.size(1))]
        out.append(torch.linalg.norm(torch.stack(rows)).item())  # Jacobian (n_y, n_x) w.r.t. x_1
    return out


def closed_form_influence(model: ElmanRNN, T_max: int) -> list[float]:
    with torch.no_grad():
        power = torch.eye(model.W_hh.size(0), dtype=model.W_hh.dtype)
        vals = []
        for _ in range(T_max):
            vals.append(torch.linalg.norm(model.W_yh @ power @ model.W_hx).item())
            power = model.W_hh @ power
    return vals


def growth_per_step(values: list[float]) -> float:
    """exp of the slope of log(influence) vs T over the second half (past the transient)."""
    T = np.arange(1, len(values) + 1)
    half = len(values) // 2
    return float(np.exp(np.polyfit(T[half:], np.log(values[half:]), 1)[0]))


def run(args: argparse.Namespace) -> int:
    started = begin(timed=False)
    if args.max_steps < 4:
        raise AttnlabError(f"--max-steps must be >= 4 to fit a growth rate, got {args.max_steps}")
    require_positive(args, "radii")
    require_at_least(args, 1, "hidden")
    torch.manual_seed(args.seed)
    xs = torch.randn(args.max_steps, 3, dtype=torch.float64)
    base = ElmanRNN(n_h=args.hidden, dtype=torch.float64)
    W = base.W_hh.detach().clone()
    curves: dict[str, dict] = {}
    fig, axes = figure(1, 2, figsize=(12, 4.6))
    axes = axes[0]
    T = np.arange(1, args.max_steps + 1)
    for rho in args.radii:
        entry: dict[str, Any] = {}
        for act, ax in (("identity", axes[0]), ("tanh", axes[1])):
            m = ElmanRNN(n_h=args.hidden, activation=act, dtype=torch.float64)
            m.load_state_dict(base.state_dict())
            with torch.no_grad():
                m.W_hh.copy_(with_spectral_radius(W, rho))
            vals = influence(m, xs)
            entry[act] = {"influence": vals, "growth_per_step": growth_per_step(vals)}
            if act == "identity":
                closed = closed_form_influence(m, args.max_steps)
                entry["closed_form"] = closed
                entry["closed_form_max_rel_diff"] = float(np.max(np.abs(np.array(vals) - closed) / np.array(closed)))
            ax.semilogy(T, vals, label=f"rho={rho:g} (x{entry[act]['growth_per_step']:.3f}/step)")
        curves[f"{rho:g}"] = entry
    for ax, act in zip(axes, ("psi = identity (linear RNN)", "psi = tanh")):
        ax.set_xlabel("T (steps between x_1 and y_T)")
        ax.set_ylabel("||d o_T / d x_1||  (log scale)")
        ax.set_title(f"influence of x_1 on y_T, {act}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    rates = {k: v["identity"]["growth_per_step"] for k, v in curves.items()}
    headline = {
        "linear_growth_per_step_vs_rho": {k: round(r, 4) for k, r in rates.items()},
        f"linear_influence_at_T={args.max_steps}": {k: float(f"{v['identity']['influence'][-1]:.3g}")
                                                    for k, v in curves.items()},
        "autograd_vs_closed_form_max_rel_diff": max(v["closed_form_max_rel_diff"] for v in curves.values()),
    }
    config = {"max_steps": args.max_steps, "radii": args.radii, "hidden": args.hidden, "seed": args.seed}
    write_results(args.out, "vanishing", fig, config=config, results={"curves": curves},
                  headline=headline, started=started)
    return 0
