"""Two probes of the ``char`` training step that the README's "Speed against the references" quotes:
PyTorch's own GELU against oneDNN's, and every matrix product timed inside the step.

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/step_probe.py

Part 1: in float32 on the CPU, ``F.gelu`` runs oneDNN's kernel. The probe times the GELU alone on
a 768 x 512 block (the ``char`` model's MLP), forward and backward, with oneDNN's kernel and with
PyTorch's (oneDNN switched off around it), then the whole training step of the ``char`` GPT
(forward, loss, backward, clipping, AdamW) with each, in alternating rounds of ``--steps`` steps,
one ratio per round. It prints how many outputs and gradients differ in their bits.

Part 2: every ``aten.mm`` of ``--steps`` training steps, timed one by one (a dispatch mode around
the call), grouped by the shapes and strides of its operands, with GFLOP/s; then the same products
alone on warm caches.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds of part 1's step (default 8)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per round and in part 2 (default 40)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.steps) < 1:
        parser.error("--rounds and --steps must be at least 1")

    from attnlab.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line does, before torch is imported
    import torch
    import torch.nn.functional as F

    from attnlab import layers
    from attnlab.bench.nanogpt import SHAPES, training_step
    from attnlab.measure import LoadWatch
    from attnlab.models.gpt import GPTConfig

    torch.set_num_threads(args.threads)
    watch = LoadWatch.start()
    fields, batch, _ = SHAPES["char"]
    cfg = GPTConfig(**fields, dropout=0.0)
    context = cfg.context

    def without_onednn(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``fn()`` with oneDNN off (the flag that DecodeStep sets too; ``mkldnn.flags()`` also warns)."""
        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        try:
            return fn()
        finally:
            torch.backends.mkldnn.enabled = True  # type: ignore[assignment]

    class AtenGelu(torch.autograd.Function):
        """GELU forward and backward with oneDNN off: PyTorch's own kernels."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, approximate: str) -> torch.Tensor:
            ctx.save_for_backward(x)
            ctx.approximate = approximate
            return without_onednn(lambda: torch.ops.aten.gelu(x, approximate=approximate))

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
            (x,) = ctx.saved_tensors
            return without_onednn(lambda: torch.ops.aten.gelu_backward(grad, x, approximate=ctx.approximate)), None

    use_aten = [False]
    plain_forward = layers.FFN.forward

    def ffn_forward(self: Any, x: torch.Tensor) -> torch.Tensor:  # FFN.forward with either GELU
        if not use_aten[0]:
            return plain_forward(self, x)
        x = self.fc2(AtenGelu.apply(self.fc1(x), self.approximate))
        return self.drop(x) if self.training else x

    layers.FFN.forward = ffn_forward  # type: ignore[method-assign]  # this process only

    # part 1a: the GELU alone
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch * context, cfg.mlp_dim, generator=gen, requires_grad=True)
    g = torch.randn(x.shape, generator=gen)

    def gelu_pass() -> None:
        y = AtenGelu.apply(x, "none") if use_aten[0] else F.gelu(x)
        y.backward(g)
        x.grad = None

    print(f"1. GELU, {x.shape[0]} x {x.shape[1]}, forward and backward, {args.threads} threads")
    for aten in (False, True, False, True):
        use_aten[0] = aten
        print(f"  {'PyTorch' if aten else 'oneDNN':8} {1e3 * _per_call(gelu_pass, 200):.3f} ms")
    use_aten[0] = False
    onednn_y, onednn_g = F.gelu(x.detach()), torch.ops.aten.gelu_backward(g, x.detach())
    aten_y = without_onednn(lambda: torch.ops.aten.gelu(x.detach()))
    aten_g = without_onednn(lambda: torch.ops.aten.gelu_backward(g, x.detach()))
    print(f"  bits that differ: {100 * (onednn_y != aten_y).float().mean():.0f} % of outputs, "
          f"{100 * (onednn_g != aten_g).float().mean():.0f} % of gradients")

    # part 1b: the whole step, alternating: bench nanogpt's, whose FFNs take the GELU chosen
    step, _ = training_step("attnlab", "char")

    def timed(aten: bool) -> float:
        use_aten[0] = aten
        return _per_call(step, args.steps)  # after 3 untimed steps with the GELU just chosen

    print(f"   the char GPT's training step (batch {batch} x {context}), {args.steps} steps a side "
          f"per round, the order swapped every other round")
    ratios = []
    for r in range(args.rounds):
        first, second = (False, True) if r % 2 == 0 else (True, False)
        times = {first: timed(first), second: timed(second)}
        ratios.append(times[False] / times[True])
        print(f"  round {r + 1}: oneDNN {1e3 * times[False]:.2f} ms, PyTorch {1e3 * times[True]:.2f} ms, "
              f"speed-up {ratios[-1]:.3f}x")
    print(f"  median speed-up {statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f}x)")
    use_aten[0] = False

    # part 2: the matrix products inside the step, then alone
    products = _products_in(step, args.steps)
    print(f"2. every matrix product of {args.steps} steps, timed inside the step, then alone on warm caches")
    print(f"  {'A (shape, strides)':<26} {'B (shape, strides)':<26} {'per step':>8} {'GFLOP/s':>8} {'alone':>8}")
    for (a_shape, a_strides, b_shape, b_strides), calls in sorted(products.items(), key=lambda kv: -sum(kv[1])):
        median = statistics.median(calls)
        flops = 2 * a_shape[0] * a_shape[1] * b_shape[1]
        a = torch.empty_strided(a_shape, a_strides).normal_()
        b = torch.empty_strided(b_shape, b_strides).normal_()
        alone = _per_call(functools.partial(torch.mm, a, b), 200)
        print(f"  {str(a_shape) + ' ' + str(a_strides):<26} {str(b_shape) + ' ' + str(b_strides):<26} "
              f"{len(calls) // args.steps:>8} {flops / median / 1e9:>8.1f} {flops / alone / 1e9:>8.1f}")
    print(watch.stop().summary())
    return 0


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of ``fn``, over ``n`` calls after a few untimed ones."""
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _products_in(step: Callable[[], object], steps: int) -> dict[tuple, list[float]]:
    """The seconds of every ``aten.mm`` call in ``steps`` calls of ``step``, by operands' shapes and strides."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    calls: dict[tuple, list[float]] = defaultdict(list)

    class Timer(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func is not torch.ops.aten.mm.default:
                return func(*args, **(kwargs or {}))
            a, b = args
            start = time.perf_counter()
            out = func(*args, **(kwargs or {}))
            calls[(tuple(a.shape), a.stride(), tuple(b.shape), b.stride())].append(time.perf_counter() - start)
            return out

    with Timer():
        for _ in range(steps):
            step()
    return calls


if __name__ == "__main__":
    sys.exit(main())
