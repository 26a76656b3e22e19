"""Where ``bench attention``'s peak memory goes: our MultiHeadedAttention against
``torch.nn.MultiheadAttention``, one forward and backward each, beside variants of ours that
change only how the two projections run (README, "On a GPU").

    python tools/attention_memory.py --device cuda --explain

On an H200, ours peaked at 1.078x torch's at T = 256 and 1.064x at T = 1,024. That was the same
under every attention backend and every way of splitting q, k and v. At the peak, ours still held
two buffers made by the backward, with the sizes of the input's and the packed q/k/v weight's
bf16 gradients. The variants test whether the projections' layout is the cause:

- ``ours-2d``: both projections on flattened (B*T, dim) inputs, as 2-D ``addmm``;
- ``ours-tbd``: torch's layout, time-major (T, B, dim) through the projections, as
  ``nn.MultiheadAttention`` does with ``batch_first=True``.

Every variant computes the same function from the same weights: the script prints each one's
largest difference from torch's output, and fails if one strays. ``--explain`` (CUDA only) lists
the blocks live at each variant's peak, from the CUDA allocator's history, with the source line
that made each (none: made by the backward). On the CPU the peaks are the profiler's, in fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from attnlab.attention import fused_attention, merge_heads, split_heads  # noqa: E402
from attnlab.device import autocast_for  # noqa: E402
from attnlab.layers import MultiHeadedAttention  # noqa: E402
from attnlab.measure import peak_bytes  # noqa: E402

Variant = Callable[[Tensor], Tensor]


def variants(ours: MultiHeadedAttention, ref: torch.nn.MultiheadAttention) -> dict[str, Variant]:
    """The modules and the variants of ours, each ``x (B, T, dim) -> (B, T, dim)``."""
    H = ours.num_heads
    w_qkv, b_qkv, w_o, b_o = ours.qkv.weight, ours.qkv.bias, ours.W_O.weight, ours.W_O.bias

    def ours_2d(x: Tensor) -> Tensor:
        B, T, D = x.shape
        qkv = F.linear(x.reshape(B * T, D), w_qkv, b_qkv).view(B, T, -1)  # (B*T, 3D) -> (B, T, 3D)
        q, k, v = split_heads(qkv, 3, H)  # 3 x (B, H, T, hd)
        out = merge_heads(fused_attention(q, k, v))  # (B, T, D)
        return F.linear(out.reshape(B * T, D), w_o, b_o).view(B, T, D)  # (B*T, D) -> (B, T, D)

    def ours_tbd(x: Tensor) -> Tensor:
        B, T, D = x.shape
        qkv = F.linear(x.transpose(0, 1), w_qkv, b_qkv)  # (T, B, 3D), as torch's module runs it
        q, k, v = qkv.view(T, B, 3, H, D // H).permute(2, 1, 3, 0, 4).unbind(0)  # 3 x (B, H, T, hd)
        out = fused_attention(q, k, v).permute(2, 0, 1, 3).reshape(T * B, D)  # (T, B, H, hd) -> (T*B, D)
        return F.linear(out, w_o, b_o).view(T, B, D).transpose(0, 1)  # (B, T, D)

    return {"torch": lambda x: ref(x, x, x, need_weights=False)[0], "ours": lambda x: ours(x)[0],
            "ours-2d": ours_2d, "ours-tbd": ours_tbd}


def step(fn: Variant, x: Tensor, device: torch.device) -> None:
    """One forward and backward, as ``bench attention`` times and measures it."""
    with autocast_for(device):
        out = fn(x)
    out.float().sum().backward()


def live_at_peak(fn: Callable[[], None]) -> list[tuple[int, str]]:
    """(bytes, source line) of the CUDA blocks allocated by ``fn`` and live at its peak."""
    torch.cuda.memory._record_memory_history(max_entries=100_000, stacks="python")
    try:
        fn()
        torch.cuda.synchronize()
        snap = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    live: dict[int, dict] = {}
    now = best = 0
    at_peak: dict[int, dict] = {}
    for event in (e for trace in snap["device_traces"] for e in trace):
        if event["action"] == "alloc":
            live[event["addr"]] = event
            now += event["size"]
        elif event["action"] == "free_requested" and event["addr"] in live:
            now -= live.pop(event["addr"])["size"]
        if now > best:
            best, at_peak = now, dict(live)

    def where(event: dict) -> str:
        frames = [f for f in event.get("frames", []) if "/torch/" not in f["filename"]
                  or "functional.py" in f["filename"] or "activation.py" in f["filename"]]
        return next((f"{Path(f['filename']).name}:{f['line']} {f['name']}" for f in frames), "(backward)")

    return sorted(((e["size"], where(e)) for e in at_peak.values()), reverse=True)


def measure(*, batch: int, dim: int, heads: int, lengths: list[int], device: torch.device,
            explain: bool = False) -> dict:
    torch.manual_seed(0)
    ours = MultiHeadedAttention(dim, heads, dim // heads).to(device)
    ref = ours.to_torch().to(device)
    fns = variants(ours, ref)

    def reset(x: Tensor) -> None:  # between steps, outside the measured one: the old gradients freed
        ours.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        x.grad = None

    rows = []
    for T in lengths:
        x = torch.randn(batch, T, dim, device=device, requires_grad=True)
        with torch.no_grad(), autocast_for(device):
            want = fns["torch"](x).float()
            diffs = {name: (fn(x).float() - want).abs().max().item() for name, fn in fns.items()}
        for name, fn in fns.items():
            one = partial(step, fn, x, device)
            for _ in range(2):  # warm: kernels chosen, workspaces made
                reset(x)
                one()
            reset(x)
            peak = peak_bytes(one, device)
            reset(x)
            blocks = live_at_peak(one) if explain else []
            rows.append({"T": T, "variant": name, "peak_mib": peak / 2**20, "max_abs_diff": diffs[name],
                         "live_at_peak": [{"mib": size / 2**20, "made_at": line} for size, line in blocks]})
    return {"batch": batch, "dim": dim, "heads": heads, "device": str(device), "rows": rows}


def report(res: dict) -> str:
    torch_peak = {r["T"]: r["peak_mib"] for r in res["rows"] if r["variant"] == "torch"}
    lines = [f"peak memory of one forward+backward, batch {res['batch']}, dim {res['dim']}, "
             f"{res['heads']} heads, on {res['device']}", "",
             "| T | variant | peak MiB | / torch's | max abs diff from torch |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        ratio = r["peak_mib"] / torch_peak[r["T"]] if torch_peak[r["T"]] else float("nan")
        lines.append(f"| {r['T']} | {r['variant']} | {r['peak_mib']:.3f} | {ratio:.3f} | {r['max_abs_diff']:.2e} |")
    for r in res["rows"]:
        if r["live_at_peak"]:
            lines += ["", f"T = {r['T']}, {r['variant']}: blocks live at the peak"]
            lines += [f"  {b['mib']:8.3f} MiB  {b['made_at']}" for b in r["live_at_peak"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--explain", action="store_true", help="list the blocks live at each peak (CUDA only)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest difference from torch's output allowed (default: 1e-4 in fp32, 0.05 under bf16)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU here")
    if args.explain and args.device != "cuda":
        p.error("--explain reads the CUDA allocator's history: it needs --device cuda")
    if min(args.batch, args.dim, args.heads, *args.lengths) < 1 or args.dim % args.heads:
        p.error("--batch, --dim, --heads and --lengths must be positive, and --dim divisible by --heads")
    res = measure(batch=args.batch, dim=args.dim, heads=args.heads, lengths=args.lengths,
                  device=torch.device(args.device), explain=args.explain)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    tolerance = args.tolerance if args.tolerance is not None else (0.05 if args.device == "cuda" else 1e-4)
    strays = [f"{r['variant']} at T = {r['T']}" for r in res["rows"] if not r["max_abs_diff"] <= tolerance]
    if strays:
        print(f"attention_memory: these compute something else than torch's module: {', '.join(strays)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
