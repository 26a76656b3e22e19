"""``attnlab lab graph``: an RNN unrolled over a few steps, and the paths its gradient takes into W_hh.

The drawing shows every value of the unrolled network (inputs x_t, pre-activations z_t, states
h_t, outputs o_t and y_hat_t, per-step losses J_t and their sum J) and the three weight matrices
that all steps share. An edge carries gradient into ``W_hh`` exactly when it lies on a forward
path from ``W_hh`` to the loss ``J``; backpropagation through time (BPTT) walks those edges
backwards. For ``T`` steps there are ``T (T + 1) / 2`` such paths, because each ``J_t`` reaches
``W_hh`` through every ``z_i`` with ``i <= t``: that is the double sum in the BPTT gradient
``dJ/dW_hh = sum_t sum_{i<=t} dJ_t/dz_i h_{i-1}^T``. The drawing is also saved as ``graph.svg``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from attnlab.errors import AttnlabError
from attnlab.lab._common import add_out_argument, begin, plt, write_results

HELP = "draw an RNN unrolled over T steps (PNG and SVG) with the paths its gradient takes into W_hh"
EXAMPLE = "attnlab lab graph --steps 3 --out runs/lab/graph"
TINY_ARGS = ["--steps", "2"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=3, help="time steps to unroll, 1 to 6 (default 3)")
    add_out_argument(p, "graph")


def build_graph(T: int) -> tuple[dict[str, tuple[float, float, str]], list[tuple[str, str]]]:
    """Nodes ``name -> (x, y, kind)`` and forward edges ``(src, dst)`` of the RNN unrolled T steps."""
    nodes: dict[str, tuple[float, float, str]] = {"h_0": (0.0, 2.4, "state")}
    edges: list[tuple[str, str]] = []
    dx = 2.6
    for t in range(1, T + 1):
        x = dx * t
        for name, y, kind in [("x", 0.0, "input"), ("z", 1.2, "value"), ("h", 2.4, "state"),
                              ("o", 3.6, "value"), ("yhat", 4.8, "value"), ("J", 6.0, "loss")]:
            nodes[f"{name}_{t}"] = (x, y, kind)
        nodes[f"y_{t}"] = (x + 1.0, 5.4, "input")  # the target
        edges += [(f"x_{t}", f"z_{t}"), (f"h_{t - 1}", f"z_{t}"), ("W_hx", f"z_{t}"), ("W_hh", f"z_{t}"),
                  (f"z_{t}", f"h_{t}"), (f"h_{t}", f"o_{t}"), ("W_yh", f"o_{t}"), (f"o_{t}", f"yhat_{t}"),
                  (f"yhat_{t}", f"J_{t}"), (f"y_{t}", f"J_{t}"), (f"J_{t}", "J")]
    mid = dx * (T + 1) / 2
    nodes["W_hx"] = (mid + 0.9, -1.5, "weight")
    nodes["W_hh"] = (mid - 0.9, -1.5, "weight")
    nodes["W_yh"] = (dx * T + 2.2, 3.6, "weight")
    nodes["J"] = (mid, 7.3, "loss")
    return nodes, edges


def gradient_paths(edges: list[tuple[str, str]], src: str = "W_hh", dst: str = "J") -> list[list[str]]:
    """Every forward path from ``src`` to ``dst`` (backprop follows them from ``dst`` back)."""
    out = defaultdict(list)
    for a, b in edges:
        out[a].append(b)
    paths: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        if node == dst:
            paths.append(path)
            return
        for nxt in out[node]:
            walk(nxt, path + [nxt])

    walk(src, [src])
    return paths


_LABEL = {"x": "x", "z": "z", "h": "h", "o": "o", "yhat": r"\hat{y}", "J": "J", "y": "y"}
_STYLE = {"input": ("#e8f0fe", "#3367d6"), "value": ("#ffffff", "#555555"), "state": ("#e6f4ea", "#188038"),
          "loss": ("#fce8e6", "#c5221f"), "weight": ("#fef7e0", "#b06000")}


def _label(name: str) -> str:
    if name == "J":
        return r"$J=\sum_t J_t$"
    if name.startswith("W_"):
        return rf"$W_{{{name[2:]}}}$"
    base, t = name.rsplit("_", 1)
    return rf"${_LABEL[base]}_{{{t}}}$"


def draw(nodes, edges, on_path: set[tuple[str, str]], T: int):
    fig, ax = plt.subplots(figsize=(2.3 * T + 4.5, 7.5))
    for a, b in edges:
        (xa, ya, _), (xb, yb, _) = nodes[a], nodes[b]
        hot = (a, b) in on_path
        weight_edge = a.startswith("W_")
        ax.annotate("", xy=(xb, yb), xytext=(xa, ya), zorder=2 if hot else 1,
                    arrowprops=dict(arrowstyle="-|>", lw=2.4 if hot else 1.0, shrinkA=15, shrinkB=15,
                                    color="#d93025" if hot else "#9aa0a6",
                                    linestyle="--" if weight_edge else "-",
                                    connectionstyle="arc3,rad=0.12" if weight_edge else "arc3,rad=0"))
    for name, (x, y, kind) in nodes.items():
        face, edge = _STYLE[kind]
        ax.text(x, y, _label(name), ha="center", va="center", fontsize=13, zorder=3,
                bbox=dict(boxstyle="round,pad=0.35" if kind == "weight" or name == "J" else "circle,pad=0.25",
                          fc=face, ec=edge, lw=1.5))
    ax.set_title(f"Elman RNN unrolled over {T} steps: z_t = W_hx x_t + W_hh h_(t-1), h_t = psi(z_t), "
                 f"o_t = W_yh h_t, y_hat_t = softmax(o_t)\nred: the {len(gradient_paths(edges))} paths along "
                 "which BPTT carries dJ/dW_hh (walked backwards from J); dashed: shared weights", fontsize=10)
    xs = [p[0] for p in nodes.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(-2.2, 8.0)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def run(args: argparse.Namespace) -> int:
    started = begin(timed=False)
    T = args.steps
    if not 1 <= T <= 6:
        raise AttnlabError(f"--steps must be between 1 and 6 (a readable drawing), got {T}")
    nodes, edges = build_graph(T)
    paths = gradient_paths(edges)
    on_path = {(p[i], p[i + 1]) for p in paths for i in range(len(p) - 1)}
    fig = draw(nodes, edges, on_path, T)
    args.out.mkdir(parents=True, exist_ok=True)
    svg = args.out / "graph.svg"
    fig.savefig(svg, bbox_inches="tight")
    print(f"wrote {svg}")
    results = {
        "nodes": {k: {"x": v[0], "y": v[1], "kind": v[2]} for k, v in nodes.items()},
        "edges": [list(e) for e in edges],
        "gradient_edges_into_W_hh": sorted(list(e) for e in on_path),
        "gradient_paths_into_W_hh": [list(reversed(p)) for p in paths],  # as backprop walks them
        "svg": svg.name,
    }
    headline = {"steps": T, "nodes": len(nodes), "edges": len(edges),
                "paths_into_W_hh": len(paths), "expected_T(T+1)/2": T * (T + 1) // 2}
    write_results(args.out, "graph", fig, config={"steps": T, "seed": args.seed}, results=results,
                  headline=headline, started=started)
    return 0
