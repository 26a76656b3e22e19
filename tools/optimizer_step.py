"""AdamW's step alone and in the training step: torch's loop, attnlab's FlatAdamW (with torch's
step on its flat tensors and with the C++ one) and torch's fused kernel.

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/optimizer_step.py --shape char

Part 1 builds the shape's GPT with random weights and fixed random gradients, gives each of the
four optimizers its own copy with fit's parameter groups (:func:`attnlab.engine.schedule.param_groups`),
times their steps alternating (each step once per round, the order reversed every other
round), and prints the median milliseconds and the speed-up over torch's loop. It then checks
the weights after all the steps: both FlatAdamW's must equal the loop's bit for bit (the fused
kernel's need not). Part 2 times the whole training step (forward, loss, backward, clipping,
AdamW) on two copies of the same weights, FlatAdamW with torch's step against FlatAdamW with the
C++ one (``ATTNLAB_ADAMW`` switched step by step), and checks that their weights agree bit for
bit at the end. The README's "Speed against the references" quotes its output.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the keys of attnlab.bench.nanogpt.SHAPES, which imports torch (the allocator policy must come first)
    parser.add_argument("--shape", choices=["char", "default"], default="char",
                        help="a model shape of `attnlab bench nanogpt --shape` (default char)")
    parser.add_argument("--rounds", type=int, default=200, help="steps of each optimizer in part 1 (default 200)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each in part 2 (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)

    from attnlab.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line does, before torch is imported
    import torch
    import torch.nn.functional as F

    from attnlab.bench.nanogpt import SHAPES
    from attnlab.engine.adamw_kernel import kernel
    from attnlab.engine.flat_adamw import FlatAdamW, shared_parameters
    from attnlab.engine.schedule import make_optimizer, param_groups
    from attnlab.errors import AttnlabError
    from attnlab.measure import LoadWatch
    from attnlab.models.gpt import GPTConfig, random_gpt

    torch.set_num_threads(args.threads)
    try:
        kernel("cpp")  # builds it (the first time) before any clock starts
    except AttnlabError as e:  # no compiler, or it does not match torch here: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    fields, batch, _ = SHAPES[args.shape]
    base = random_gpt(GPTConfig(**fields, dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen) * 1e-2 for p in base.parameters()]

    def side(kind: str):  # (model, one step)
        model = copy.deepcopy(base)
        groups = param_groups(model, 0.1)
        settings = {"lr": 1e-3, "betas": (0.9, 0.99)}
        if kind.startswith("FlatAdamW"):
            opt: torch.optim.Optimizer = FlatAdamW(groups, keep_apart=shared_parameters(model), **settings)
        else:
            opt = torch.optim.AdamW(groups, fused=kind == "torch fused", **settings)
        params = list(model.parameters())
        backend = "cpp" if kind == "FlatAdamW C++" else "torch"

        def step() -> None:
            os.environ["ATTNLAB_ADAMW"] = backend  # read at every step
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()

        return model, step

    sides = {kind: side(kind) for kind in ("torch loop", "FlatAdamW", "FlatAdamW C++", "torch fused")}
    load = LoadWatch.start()
    times: dict[str, list[float]] = {kind: [] for kind in sides}
    for r in range(args.rounds):
        order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
        for kind, (_, step) in order:
            start = time.perf_counter()
            step()
            times[kind].append(time.perf_counter() - start)
    tensors = sum(1 for _ in base.parameters())
    print(f"1. AdamW's step alone, {args.shape} GPT ({tensors} tensors, {sum(p.numel() for p in base.parameters()):,} "
          f"parameters), {args.threads} threads, median of {args.rounds} alternating steps")
    loop = statistics.median(times["torch loop"])
    for kind, t in times.items():
        ms = statistics.median(t)
        print(f"  {kind:<13} {ms * 1e3:7.3f} ms  (quartiles {statistics.quantiles(t, n=4)[0] * 1e3:.3f}-"
              f"{statistics.quantiles(t, n=4)[2] * 1e3:.3f})  {loop / ms:5.2f}x the loop")
    reference = list(sides["torch loop"][0].parameters())
    same = {kind: all(torch.equal(a, b) for a, b in zip(reference, sides[kind][0].parameters()))
            for kind in ("FlatAdamW", "FlatAdamW C++", "torch fused")}
    for kind, equal in same.items():
        verdict = "bit-identical to" if equal else "differ from"
        print(f"  {kind} weights after {args.rounds} steps: {verdict} the loop's")

    T = base.config.context
    x, y = (torch.randint(2, base.config.vocab_size, (batch, T), generator=gen) for _ in range(2))
    models = {}
    for name, backend in (("torch's", "torch"), ("C++", "cpp")):
        model = copy.deepcopy(base).train()
        models[name] = (model, make_optimizer(model, 1e-3, 0.1, beta2=0.99), backend)

    def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, backend: str) -> None:
        os.environ["ATTNLAB_ADAMW"] = backend
        logits = model(x)  # (B, T, V)
        F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    steps: dict[str, list[float]] = {name: [] for name in models}
    for i in range(3 + args.steps):
        for name in (list(models) if i % 2 == 0 else list(models)[::-1]):
            start = time.perf_counter()
            train_step(*models[name])
            if i >= 3:
                steps[name].append(time.perf_counter() - start)
    print(f"2. the whole training step of the {args.shape} GPT (batch {batch} x {T}), FlatAdamW with torch's step "
          f"and with the C++ one; median of {args.steps} alternating steps")
    first = statistics.median(steps["torch's"])
    for name, t in steps.items():
        q = statistics.quantiles(t, n=4)
        print(f"  {name:<7} {statistics.median(t) * 1e3:8.3f} ms  (quartiles {q[0] * 1e3:.3f}-{q[2] * 1e3:.3f})  "
              f"{first / statistics.median(t):5.3f}x")
    trained_same = all(torch.equal(a, b) for a, b in zip(models["torch's"][0].parameters(),
                                                            models["C++"][0].parameters()))
    print(f"  weights after {3 + args.steps} steps: {'bit-identical' if trained_same else 'different'}")
    print(load.stop().summary())
    return 0 if same["FlatAdamW"] and same["FlatAdamW C++"] and trained_same else 1


if __name__ == "__main__":
    sys.exit(main())
