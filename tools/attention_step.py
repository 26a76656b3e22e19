"""Causal self-attention alone, and the whole training step, with PyTorch's kernel and attnlab's.

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/attention_step.py --shape char

Part 1, one layer's attention alone: the fused projection ``qkv`` (B, T, 3 * dim) of the shape's
batch, forward and backward, through PyTorch's fused kernel (``F.scaled_dot_product_attention``,
``is_causal``, as ``ATTNLAB_ATTENTION=torch`` runs it) and through attnlab's C++ kernel
(:mod:`attnlab.attention_kernel`), alternating call by call. Part 2, the whole training step of
the shape's GPT (forward, loss, backward, clipping, AdamW) with each, alternating step by step on
two copies of the same weights. Both print medians with quartiles and the speed-up, and the
largest difference between the two results. The README's "Speed against the references" quotes
its output.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    base = statistics.median(times["PyTorch"])
    for kind, t in times.items():
        q = statistics.quantiles(t, n=4)
        print(f"  {kind:<8} {statistics.median(t) * 1e3:8.3f} ms  (quartiles {q[0] * 1e3:.3f}-{q[2] * 1e3:.3f})  "
              f"{base / statistics.median(t):5.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the keys of attnlab.bench.nanogpt.SHAPES, which imports torch (the allocator policy must come first)
    parser.add_argument("--shape", choices=["char", "default"], default="char",
                        help="a model shape of `attnlab bench nanogpt --shape` (default char)")
    parser.add_argument("--calls", type=int, default=300, help="attention calls of each (default 300)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)

    from attnlab.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line does, before torch is imported
    import torch
    import torch.nn.functional as F

    from attnlab.attention_kernel import MAX_CONTEXT, causal_self_attention, kernel_for
    from attnlab.bench.nanogpt import SHAPES
    from attnlab.engine.schedule import make_optimizer
    from attnlab.errors import AttnlabError
    from attnlab.measure import LoadWatch
    from attnlab.models.gpt import GPTConfig, random_gpt

    torch.set_num_threads(args.threads)
    fields, batch, _ = SHAPES[args.shape]
    cfg = GPTConfig(**fields, dropout=0.0)
    B, T, C, H = batch, cfg.context, cfg.dim, cfg.num_heads
    if T > MAX_CONTEXT:
        print(f"note: context {T} is over the kernel's {MAX_CONTEXT}; it is timed all the same (part 1 only)")
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(B, T, 3 * C, generator=gen, requires_grad=True)
    grad = torch.randn(B, T, C, generator=gen)
    try:
        kernel = kernel_for(qkv[:, :1], 0.0, "cpp")  # builds it (the first time) before any clock starts
    except AttnlabError as e:  # no compiler: one line
        print(f"error: {e}", file=sys.stderr)
        return 2

    def pytorch() -> torch.Tensor:
        q, k, v = qkv.view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, hd) each
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)

    def attnlab() -> torch.Tensor:
        return causal_self_attention(kernel, qkv, H)

    results = {}
    for name, fn in (("PyTorch", pytorch), ("attnlab", attnlab)):
        qkv.grad = None
        out = fn()
        out.backward(grad)
        results[name] = (out.detach(), qkv.grad.clone())
    load = LoadWatch.start()
    calls: dict[str, list[float]] = {"PyTorch": [], "attnlab": []}
    for i in range(args.calls):
        for name, fn in ((("PyTorch", pytorch), ("attnlab", attnlab)) if i % 2 == 0 else
                         (("attnlab", attnlab), ("PyTorch", pytorch))):
            qkv.grad = None
            start = time.perf_counter()
            fn().backward(grad)
            calls[name].append(time.perf_counter() - start)
    _report(f"1. one layer's causal attention, forward and backward: batch {B}, {T} positions, {H} heads of "
            f"{C // H}; {args.threads} threads, median of {args.calls} alternating calls", calls)
    out_diff = (results["PyTorch"][0] - results["attnlab"][0]).abs().max().item()
    grad_diff = (results["PyTorch"][1] - results["attnlab"][1]).abs().max().item()
    print(f"  largest difference: output {out_diff:.2e}, gradient {grad_diff:.2e}")

    if T <= MAX_CONTEXT:
        base = random_gpt(cfg).train()
        x, y = (torch.randint(2, cfg.vocab_size, (B, T), generator=gen) for _ in range(2))
        sides = {}
        for name, backend in (("PyTorch", "torch"), ("attnlab", "cpp")):
            model = copy.deepcopy(base)
            sides[name] = (model, make_optimizer(model, 1e-3, 0.1, beta2=0.99), backend)

        def step(model: torch.nn.Module, opt: torch.optim.Optimizer, backend: str) -> float:
            os.environ["ATTNLAB_ATTENTION"] = backend  # read at every forward
            logits = model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        losses: dict[str, list[float]] = {"PyTorch": [], "attnlab": []}
        steps: dict[str, list[float]] = {"PyTorch": [], "attnlab": []}
        for i in range(3 + args.steps):
            for name in (("PyTorch", "attnlab") if i % 2 == 0 else ("attnlab", "PyTorch")):
                start = time.perf_counter()
                losses[name].append(step(*sides[name]))
                if i >= 3:
                    steps[name].append(time.perf_counter() - start)
        _report(f"2. the whole training step of the {args.shape} GPT ({cfg.num_layers} layers, batch {B} x {T}); "
                f"median of {args.steps} alternating steps", steps)
        print(f"  losses: first {losses['PyTorch'][0]:.6f} / {losses['attnlab'][0]:.6f}, last "
              f"{losses['PyTorch'][-1]:.6f} / {losses['attnlab'][-1]:.6f}")
    print(load.stop().summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
