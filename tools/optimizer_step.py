"""AdamW's step alone: torch's loop, attnlab's FlatAdamW and torch's fused kernel, on one model.

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/optimizer_step.py --shape char

It builds the shape's GPT with random weights and fixed random gradients, gives each of the
three optimizers its own copy with fit's parameter groups (:func:`attnlab.engine.schedule.param_groups`),
times their steps alternating (each step once per round, the order reversed every other
round), and prints the median milliseconds and the speed-up over torch's loop. It then checks
the weights after all the steps: FlatAdamW's must equal the loop's bit for bit (the fused
kernel's need not). The README's "Speed against the references" quotes its output.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the keys of attnlab.bench.nanogpt.SHAPES, which imports torch (the allocator policy must come first)
    parser.add_argument("--shape", choices=["char", "default"], default="char",
                        help="a model shape of `attnlab bench nanogpt --shape` (default char)")
    parser.add_argument("--rounds", type=int, default=200, help="steps of each optimizer (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)

    from attnlab.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line does, before torch is imported
    import torch

    from attnlab.bench.nanogpt import SHAPES
    from attnlab.engine.flat_adamw import FlatAdamW, shared_parameters
    from attnlab.engine.schedule import param_groups
    from attnlab.measure import LoadWatch
    from attnlab.models.gpt import GPTConfig, random_gpt

    torch.set_num_threads(args.threads)
    base = random_gpt(GPTConfig(**SHAPES[args.shape][0], dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen) * 1e-2 for p in base.parameters()]

    def side(kind: str):  # (model, one step)
        model = copy.deepcopy(base)
        groups = param_groups(model, 0.1)
        settings = {"lr": 1e-3, "betas": (0.9, 0.99)}
        if kind == "FlatAdamW":
            opt: torch.optim.Optimizer = FlatAdamW(groups, keep_apart=shared_parameters(model), **settings)
        else:
            opt = torch.optim.AdamW(groups, fused=kind == "torch fused", **settings)
        params = list(model.parameters())

        def step() -> None:
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()

        return model, step

    sides = {kind: side(kind) for kind in ("torch loop", "FlatAdamW", "torch fused")}
    load = LoadWatch.start()
    times: dict[str, list[float]] = {kind: [] for kind in sides}
    for r in range(args.rounds):
        order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
        for kind, (_, step) in order:
            start = time.perf_counter()
            step()
            times[kind].append(time.perf_counter() - start)
    tensors = sum(1 for _ in base.parameters())
    print(f"AdamW step, {args.shape} GPT ({tensors} tensors, {sum(p.numel() for p in base.parameters()):,} "
          f"parameters), {args.threads} threads, median of {args.rounds} alternating steps")
    loop = statistics.median(times["torch loop"])
    for kind, t in times.items():
        ms = statistics.median(t)
        print(f"{kind:<12} {ms * 1e3:7.3f} ms  (quartiles {statistics.quantiles(t, n=4)[0] * 1e3:.3f}-"
              f"{statistics.quantiles(t, n=4)[2] * 1e3:.3f})  {loop / ms:5.2f}x the loop")
    reference = list(sides["torch loop"][0].parameters())
    for kind in ("FlatAdamW", "torch fused"):
        same = all(torch.equal(a, b) for a, b in zip(reference, sides[kind][0].parameters()))
        print(f"{kind} weights after {args.rounds} steps: {'bit-identical to' if same else 'differ from'} the loop's")
    print(load.stop().summary())
    flat_same = all(torch.equal(a, b) for a, b in zip(reference, sides["FlatAdamW"][0].parameters()))
    return 0 if flat_same else 1


if __name__ == "__main__":
    sys.exit(main())
