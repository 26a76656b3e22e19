"""``attnlab bench attention``: our MultiHeadedAttention vs ``torch.nn.MultiheadAttention``.

Both modules have the same size and the same weights (copied), run in the same process on the
same input, forward + backward (the input requires grad, as inside a network), with
``need_weights=False`` so that both take PyTorch's fused attention kernel. Timing is interleaved
(ours, torch, ours, torch, ...) and the median is reported; peak memory is what PyTorch's CPU
allocator holds at its high point during one step, replayed from the profiler's allocation
events (see :mod:`attnlab.measure`). The bar: ours/torch time <= 1.10 and memory <= 1.00
at every length; a miss is printed as one, and ``--check`` makes it exit code 1. The load
average before and after and the thread count go with the results.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch
from torch import nn

from attnlab.bench._common import report_load
from attnlab.device import autocast_for, bench_device, describe_device
from attnlab.files import write_json
from attnlab.measure import LoadWatch, median, peak_bytes, time_interleaved
from attnlab.options import require_at_least, require_divisible

HELP = ("time and peak memory of MultiHeadedAttention vs torch.nn.MultiheadAttention (forward+backward; "
        "CPU, or a GPU with --device cuda)")
EXAMPLE = "attnlab bench attention --lengths 64 256 1024 --repeats 10 --json bench.json"

TIME_BAR, MEMORY_BAR = 1.10, 1.00


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--dim", type=int, default=256, help="model width d (default 256)")
    p.add_argument("--heads", type=int, default=8, help="number of heads; head_dim = dim / heads (default 8)")
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="sequence lengths T")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per length (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="also write the results as JSON to PATH ('-' or no value: print JSON instead of the table)")
    p.add_argument("--check", action="store_true", help="exit with code 1 if the bar is missed at any length")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="cpu (default; fp32) or cuda (bf16 autocast for both modules)")


def _modules(dim: int, heads: int) -> tuple[nn.Module, nn.Module]:
    from attnlab.layers import MultiHeadedAttention

    torch.manual_seed(0)
    ours = MultiHeadedAttention(dim, heads, dim // heads)
    ref = ours.to_torch()  # same weights
    return ours, ref


def measure(*, batch: int, dim: int, heads: int, lengths: list[int], repeats: int, warmup: int,
            device: str = "cpu") -> dict:
    """Run the benchmark and return its results as a JSON-ready dict."""
    dev = bench_device(device)
    ours, ref = (m.to(dev) for m in _modules(dim, heads))
    rows = []
    for T in lengths:
        x = torch.randn(batch, T, dim, device=dev, requires_grad=True)

        def reset() -> None:  # outside the measured region: freeing old grads is not the step's work
            ours.zero_grad(set_to_none=True)
            ref.zero_grad(set_to_none=True)
            x.grad = None

        def step_ours() -> None:
            with autocast_for(dev):
                out, _ = ours(x, need_weights=False)
            out.float().sum().backward()

        def step_torch() -> None:
            with autocast_for(dev):
                out, _ = ref(x, x, x, need_weights=False)
            out.float().sum().backward()

        with torch.no_grad(), autocast_for(dev):
            max_diff = (ours(x)[0] - ref(x, x, x, need_weights=False)[0]).abs().max().item()
        samples = time_interleaved({"ours": step_ours, "torch": step_torch}, repeats=repeats,
                                   warmup=warmup, setup=reset, device=dev)
        t_ours, t_torch = median(samples["ours"]), median(samples["torch"])
        reset()
        m_ours = peak_bytes(step_ours, dev)
        reset()
        m_torch = peak_bytes(step_torch, dev)
        rows.append({
            "T": T,
            "ours_ms": 1e3 * t_ours,
            "torch_ms": 1e3 * t_torch,
            "time_ratio": t_ours / t_torch,
            "ours_peak_mib": m_ours / 2**20,
            "torch_peak_mib": m_torch / 2**20,
            "memory_ratio": m_ours / m_torch,
            "max_abs_diff": max_diff,
            "ours_samples_ms": [1e3 * s for s in samples["ours"]],
            "torch_samples_ms": [1e3 * s for s in samples["torch"]],
        })
    passed = all(r["time_ratio"] <= TIME_BAR and r["memory_ratio"] <= MEMORY_BAR for r in rows)
    return {
        "benchmark": "attention",
        "config": {"batch": batch, "dim": dim, "heads": heads, "head_dim": dim // heads,
                   "repeats": repeats, "warmup": warmup, "pass": "forward+backward", "device": describe_device(dev)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "memory_method": ("peak live bytes of the CUDA allocator during one step (max_memory_allocated)"
                          if dev.type == "cuda" else "peak live bytes of the CPU allocator during one step, "
                          "from torch.profiler profile_memory events"),
        "bar": {"time_ratio_max": TIME_BAR, "memory_ratio_max": MEMORY_BAR, "passed": passed},
        "rows": rows,
    }


def format_table(res: dict) -> str:
    c = res["config"]
    lines = [
        f"MultiHeadedAttention vs torch.nn.MultiheadAttention, forward+backward, batch {c['batch']}, "
        f"d={c['dim']}, {c['heads']} heads, {c['device']}, torch {res['machine']['torch']}, "
        f"median of {c['repeats']} interleaved runs",
        f"{'T':>6} {'ours ms':>9} {'torch ms':>9} {'time ratio':>10} "
        f"{'ours MiB':>9} {'torch MiB':>10} {'mem ratio':>9}  bar",
    ]
    for r in res["rows"]:
        ok = r["time_ratio"] <= TIME_BAR and r["memory_ratio"] <= MEMORY_BAR
        lines.append(
            f"{r['T']:>6} {r['ours_ms']:>9.2f} {r['torch_ms']:>9.2f} {r['time_ratio']:>10.3f} "
            f"{r['ours_peak_mib']:>9.1f} {r['torch_peak_mib']:>10.1f} {r['memory_ratio']:>9.3f}  "
            f"{'ok' if ok else 'MISSED'}"
        )
    bar = f"the bar of time ratio <= {TIME_BAR:.2f} and memory ratio <= {MEMORY_BAR:.2f}"
    missed = [str(r["T"]) for r in res["rows"] if r["time_ratio"] > TIME_BAR or r["memory_ratio"] > MEMORY_BAR]
    lines.append(f"MISSED: at T = {', '.join(missed)} a ratio is above {bar}" if missed
                 else f"{bar}: met at every length")
    lines.append(f"peak memory: {res['memory_method']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    require_at_least(args, 1, "batch", "dim", "heads", "lengths", "repeats")
    require_at_least(args, 0, "warmup")
    require_divisible(args, "dim", "heads")
    load = LoadWatch.start()
    res = measure(batch=args.batch, dim=args.dim, heads=args.heads, lengths=args.lengths,
                  repeats=args.repeats, warmup=args.warmup, device=args.device)
    res["load"] = load.stop().record()
    if args.json == "-":
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        print(format_table(res))
        if args.json:
            write_json(args.json, res)
            print(f"wrote {args.json}")
    report_load(load, table=args.json != "-")
    return 1 if (args.check and not res["bar"]["passed"]) else 0
