"""``attnlab bench peak``: what this CPU can do, the limit every speed-up is measured against.

Matmul throughput: ``x @ w.T`` into a preallocated output, as a linear layer computes it, at the
shapes of the linear layers of the default GPT, ``char-cpu`` and the ``cifar10-cpu`` ViT (their
presets' batch of tokens by the layer's input and output widths: the fused q/k/v projection, the
attention output, the two feed-forward layers, the GPT's LM head), plus a large square
reference; 2 m k n FLOPs a call. In fp32, and in bf16 (what autocast runs a linear layer in)
where the CPU has native bf16 kernels (:func:`attnlab.device.cpu_has_native_bf16`). Memory
bandwidth: STREAM's copy (``b = a``: two arrays move) and triad (``a = b + s c``: three) over
fp32 arrays larger than the caches, counted as bytes moved per second.

Every sample repeats its call until it lasts ``--min-ms``; all shapes run in interleaved rounds
(:mod:`attnlab.measure`), and each is reported as the median with the min-max of ``--repeats``
samples, at the current thread count (``--threads``), with the load average before and after.

The peak is the best median over the shapes, per precision. It is saved with the CPU's name and
the thread count in :func:`attnlab.device.peak_path` (``~/.cache/attnlab/peak.json``), and
training then logs ``mfu`` against it on the CPU (:func:`attnlab.device.model_flops_utilization`),
on the same CPU at the same thread count only.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnlab.bench._common import report_load
from attnlab.device import cpu_has_native_bf16, cpu_name, peak_path
from attnlab.files import write_json
from attnlab.measure import LoadWatch, time_interleaved
from attnlab.options import require_at_least, require_positive

HELP = ("this CPU's dense matmul GFLOP/s (fp32, and bf16 where native) at the models' shapes and its memory "
        "bandwidth; saves the peak so that training reports MFU on the CPU")
EXAMPLE = """\
attnlab bench peak
attnlab bench peak --threads 1 --repeats 7
attnlab bench peak --rows 256 --square 512 --array-mib 64   # a quick look, not saved"""

# The vocabularies of those runs (README, "Language models on Tiny Shakespeare"): they come from
# the data, not from the presets.
VOCAB = {"default": 6187, "char-cpu": 65}
SQUARE = 2048  # side of the square reference matmul


@dataclass(frozen=True)
class Shape:
    """One matmul: (m x k) @ (k x n), e.g. a batch of m tokens through a k -> n linear layer."""

    name: str
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def _block(name: str, tokens: int, dim: int, inner: int, mlp: int) -> list[Shape]:
    """The linear layers of one Transformer block: q/k/v fused, attention output, feed-forward."""
    return [Shape(f"{name}: qkv", tokens, dim, 3 * inner), Shape(f"{name}: attn out", tokens, inner, dim),
            Shape(f"{name}: mlp in", tokens, dim, mlp), Shape(f"{name}: mlp out", tokens, mlp, dim)]


def model_shapes() -> list[Shape]:
    """The linear layers of the default GPT, ``char-cpu`` and the ``cifar10-cpu`` ViT, one training
    batch of tokens each, read from the tasks' presets."""
    from attnlab.config import build_config
    from attnlab.tasks import TASKS

    shapes = []
    for preset in ("default", "char-cpu"):
        cfg = build_config(TASKS.load("gpt").CONFIG, preset)
        g = cfg.model
        tokens = cfg.train.batch_size * g.context
        shapes += _block(f"GPT {preset}", tokens, g.dim, g.dim, g.mlp_dim)
        shapes.append(Shape(f"GPT {preset}: LM head", tokens, g.dim, VOCAB[preset]))
    cfg = build_config(TASKS.load("vit").CONFIG, "cifar10-cpu")
    v = cfg.model
    grid = v.image_size // (2 ** len(v.stem_channels) * v.patch_size)  # tokens per side after stem and patches
    shapes += _block("ViT cifar10-cpu", cfg.train.batch_size * (grid * grid + 1), v.dim, v.num_heads * v.head_dim,
                     v.mlp_dim)  # + 1: the class token
    return shapes


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


def _repeated(call: Callable[[], object], min_seconds: float) -> tuple[Callable[[], None], int]:
    """``call`` repeated often enough to last ``min_seconds`` (timed after two warm-up calls), and the count."""
    call()
    t0 = time.perf_counter()
    call()
    once = max(time.perf_counter() - t0, 1e-9)
    count = max(1, math.ceil(min_seconds / once))

    def fn() -> None:
        for _ in range(count):
            call()

    return fn, count


def measure(*, shapes: list[Shape], dtypes: list[str], array_mib: float, repeats: int, min_ms: float) -> dict:
    """Run the benchmark; return its results as a JSON-ready dict (GFLOP/s and GB/s)."""
    torch.manual_seed(0)
    fns: dict[str, Callable[[], object]] = {}
    per_call: dict[str, tuple[int, float]] = {}  # name -> (calls per sample, FLOPs or bytes per call)
    for dtype_name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        for s in shapes:
            x = torch.randn(s.m, s.k).to(dtype)
            w = torch.randn(s.n, s.k).to(dtype)  # (out, in), as nn.Linear stores it
            out = torch.empty(s.m, s.n, dtype=dtype)

            def mm(x=x, w=w, out=out) -> None:
                torch.mm(x, w.t(), out=out)  # (m, k) @ (k, n): F.linear's matmul

            fns[f"{dtype_name} {s.name}"], count = _repeated(mm, min_ms / 1e3)
            per_call[f"{dtype_name} {s.name}"] = (count, s.flops)
    n = max(1, int(array_mib * 2**20 / 4))
    a, b, c = torch.rand(n), torch.rand(n), torch.rand(n)
    fns["copy"], count = _repeated(lambda: b.copy_(a), min_ms / 1e3)
    per_call["copy"] = (count, 2 * 4 * n)  # read a, write b
    fns["triad"], count = _repeated(lambda: torch.add(b, c, alpha=3.0, out=a), min_ms / 1e3)
    per_call["triad"] = (count, 3 * 4 * n)  # read b and c, write a
    samples = time_interleaved(fns, repeats=repeats, warmup=1)
    rate = {name: [per_call[name][0] * per_call[name][1] / t / 1e9 for t in ts] for name, ts in samples.items()}
    rows: list[dict[str, Any]] = [{"name": s.name, "m": s.m, "k": s.k, "n": s.n,
                                   "gflops": {d: _stats(rate[f"{d} {s.name}"]) for d in dtypes}} for s in shapes]
    peak = {d: max(r["gflops"][d]["median"] for r in rows) * 1e9 for d in dtypes}
    return {
        "benchmark": "peak",
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "config": {"repeats": repeats, "min_ms": min_ms, "array_mib": array_mib, "dtypes": dtypes},
        "rows": rows,
        "bandwidth_gbs": {"copy": _stats(rate["copy"]), "triad": _stats(rate["triad"])},
        "peak_flops": peak,  # FLOP/s: the best median over the shapes, per precision
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="timed samples per shape (median and min-max; default 5)")
    p.add_argument("--min-ms", type=float, default=100.0,
                   help="each sample repeats its call until it lasts this long (default 100 ms)")
    p.add_argument("--square", type=int, default=SQUARE, help=f"side of the square reference matmul (default {SQUARE})")
    p.add_argument("--array-mib", type=float, default=1024.0,
                   help="size of each of the three bandwidth arrays, larger than the caches (default 1024 MiB)")
    p.add_argument("--rows", type=int, default=None,
                   help="tokens (rows) of every model shape instead of the presets' batch: a quick look, not saved")
    p.add_argument("--no-bf16", action="store_true", help="fp32 only (default: bf16 too where the CPU has it natively)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice, one per core)")
    p.add_argument("--save", type=Path, default=None, metavar="PATH",
                   help=f"where to save the peak (default {peak_path()}, unless --rows is given)")
    p.add_argument("--no-save", action="store_true", help="do not save the peak")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="also write the results as JSON to PATH ('-' or no value: print JSON instead of the table)")


def format_table(res: dict) -> str:
    dtypes = res["config"]["dtypes"]
    threads = f"{res['threads']} thread{'s' if res['threads'] != 1 else ''}"
    lines = [f"dense matmul (m x k) @ (k x n), {res['cpu']}, {threads}, torch {res['torch']}; "
             f"GFLOP/s, median (min-max) of {res['config']['repeats']} interleaved samples",
             f"{'shape':<26} {'m x k x n':>20}" + "".join(f" {d + ' GFLOP/s':>24}" for d in dtypes)]
    for r in res["rows"]:
        cells = "".join(f" {_spread(r['gflops'][d], 1):>24}" for d in dtypes)
        lines.append(f"{r['name']:<26} {r['m']:>8} x {r['k']:>4} x {r['n']:>4}{cells}")
    bw = res["bandwidth_gbs"]
    lines.append(f"memory bandwidth (fp32 arrays of {res['config']['array_mib']:g} MiB), GB/s: "
                 f"copy {_spread(bw['copy'], 2)}, triad {_spread(bw['triad'], 2)}")
    lines.append("peak (best median): " + ", ".join(f"{d} {res['peak_flops'][d] / 1e9:.1f} GFLOP/s" for d in dtypes))
    return "\n".join(lines)


def _spread(s: dict, digits: int) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def run(args: argparse.Namespace) -> int:
    require_at_least(args, 1, "repeats", "square", "rows", "threads")
    require_positive(args, "min-ms", "array-mib")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = model_shapes()
    if args.rows is not None:
        shapes = [Shape(s.name, args.rows, s.k, s.n) for s in shapes]
    shapes.append(Shape("square reference", args.square, args.square, args.square))
    dtypes = ["fp32"] + ([] if args.no_bf16 or not cpu_has_native_bf16() else ["bf16"])
    load = LoadWatch.start()
    res = measure(shapes=shapes, dtypes=dtypes, array_mib=args.array_mib, repeats=args.repeats, min_ms=args.min_ms)
    res["load"] = load.stop().record()
    table = args.json != "-"
    if table:
        print(format_table(res))
    else:
        json.dump(res, sys.stdout, indent=2)
        print()
    if args.json not in (None, "-"):
        write_json(args.json, res)
        print(f"wrote {args.json}")
    save = None if args.no_save or (args.rows is not None and args.save is None) else (args.save or peak_path())
    if save is not None:
        write_json(save, res)
    if table:
        print(f"saved the peak to {save}: training on this CPU at {res['threads']} threads now logs mfu against it"
              if save is not None else "peak not saved" + (" (--rows shrank the shapes)" if args.rows else ""))
    report_load(load, table=table)
    return 0
