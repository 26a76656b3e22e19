"""``attnlab bench nanogpt``: one training step of DialogueGPT against nanoGPT's GPT of the same
shape and weights, each in its own process, as each project runs.

A step is nanoGPT's own: forward with the loss over every position, backward, gradient clipping
at 1.0, AdamW (attnlab's :func:`~attnlab.engine.schedule.make_optimizer`; nanoGPT's
``configure_optimizers``), gradients set to None. Both train on the same random batch from the
same weights (:func:`attnlab.bench.generate.nanogpt_twin`), and their first losses must agree.

Why separate processes: a process-wide setting is part of what a user gets. The ``attnlab``
command line keeps freed big blocks for reuse (:mod:`attnlab.allocator`); nanoGPT's ``train.py``
runs with glibc's defaults. So each side runs in a fresh Python, attnlab's with the command
line's allocator policy (``ATTNLAB_MALLOC``, as ``attnlab`` reads it) and nanoGPT's without
(``--same-allocator`` gives nanoGPT attnlab's policy too: then the two models' code is compared
alone). Pairs of processes alternate, and the
ratio of every pair is printed; the bar is 1.15x (issue 26).

``--in-process`` compares the models' code with less noise: both sides in this one process
(attnlab's allocator policy for both), one step of each in turn, the order reversed every other
step; each round of ``--steps`` steps per side gives a ratio of medians. Separate processes on a
shared VM differ by more than the effect measured (one session's five ``char`` pairs spread over
0.88-1.25x).

Shapes: ``default`` is the GPT preset (README command 1: 4 layers, width 128, 4 heads, context
256, vocabulary 6,187, biases, batch 32 of full windows); ``char`` is ``char-cpu`` (nanoGPT's baby GPT:
vocabulary 65, context 64, no biases, batch 12). Dropout is 0 on both sides (nanoGPT's attention
dropout would force PyTorch's unfused path).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from attnlab.allocator import MALLOC_ENV, without_policy
from attnlab.bench._common import bar_verdict, report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch
from attnlab.options import require_at_least

BAR = 1.15  # nanoGPT's step time over attnlab's

HELP = "a training step of DialogueGPT vs nanoGPT's GPT (same shape and weights), each in its own process"
EXAMPLE = """\
attnlab bench nanogpt --nanogpt ~/src/nanoGPT/model.py
attnlab bench nanogpt --nanogpt ~/src/nanoGPT/model.py --shape char --pairs 5
attnlab bench nanogpt --nanogpt ~/src/nanoGPT/model.py --same-allocator   # the models' code alone
attnlab bench nanogpt --nanogpt ~/src/nanoGPT/model.py --shape char --in-process --pairs 5 --steps 50"""

# shape name -> (GPTConfig fields, batch size, timed steps per process)
SHAPES: dict[str, tuple[dict[str, Any], int, int]] = {
    "default": ({"vocab_size": 6187, "context": 256, "bias": True}, 32, 20),
    "char": ({"vocab_size": 65, "context": 64, "bias": False}, 12, 150),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nanogpt", metavar="PATH", required=True,
                        help="nanoGPT's model.py (from github.com/karpathy/nanoGPT; attnlab does not ship it)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="default",
                        help="default: the GPT preset's model and batch; char: char-cpu's (default: default)")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of processes, alternating (default 3)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per process, after 3 untimed (default 20 for default, 150 for char)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in both (default: attnlab's policy, ATTNLAB_THREADS)")
    parser.add_argument("--same-allocator", action="store_true",
                        help="run nanoGPT with attnlab's allocator policy too (compares the models' code alone)")
    parser.add_argument("--in-process", action="store_true",
                        help="both sides in this process, one step of each in turn; --pairs rounds of --steps steps "
                             "(the models' code alone, with less noise)")


def run(args: argparse.Namespace) -> int:
    from attnlab.bench.generate import nanogpt_model_file

    require_at_least(args, 1, "pairs", "steps", "threads")
    model_file = nanogpt_model_file(args.nanogpt)  # checked here, before any process starts
    job = {"shape": args.shape, "nanogpt": str(model_file), "steps": args.steps or SHAPES[args.shape][2],
           "threads": args.threads}
    if args.in_process:
        return _in_process(job, args.pairs)
    mine = os.environ.get(MALLOC_ENV, "auto")  # the command line's policy (attnlab.allocator)
    load = LoadWatch.start()
    pairs = []
    for _ in range(args.pairs):
        ours = _spawn({**job, "side": "attnlab", "allocator": mine})
        theirs = _spawn({**job, "side": "nanoGPT", "allocator": mine if args.same_allocator else "system"})
        pairs.append((ours, theirs))
    ours, theirs = pairs[0]
    print(_title(args.shape, ours["model"], ours["threads"], f"median of {job['steps']} steps per process"))
    kept = "keeps freed memory for reuse" if ours["allocator_kept"] else f"runs with glibc's defaults ({MALLOC_ENV})"
    policy = "attnlab's policy" if args.same_allocator else "glibc's defaults"
    print(f"allocator: attnlab {kept}; nanoGPT runs with {policy}")
    print(f"{'pair':<5} {'attnlab ms':>11} {'nanoGPT ms':>11} {'ratio':>7} {'attnlab MiB':>12} {'nanoGPT MiB':>12}")
    for i, (a, b) in enumerate(pairs, 1):
        print(f"{i:<5} {a['ms']:>11.2f} {b['ms']:>11.2f} {b['ms'] / a['ms']:>6.3f}x {a['max_rss_mib']:>12,} "
              f"{b['max_rss_mib']:>12,}")
    return _summary(args.shape, [a["ms"] for a, _ in pairs], [b["ms"] for _, b in pairs], "pairs",
                    (ours["first_loss"], theirs["first_loss"]), load)


def _spawn(job: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`step_worker` in a fresh Python; its JSON answer."""
    code = "import sys; from attnlab.bench.nanogpt import step_worker; step_worker(sys.argv[1])"
    # the command line's own allocator switches stay out of a side that runs with the system's policy
    env = without_policy(os.environ) if job["allocator"] == "system" else dict(os.environ)
    done = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise AttnlabError(f"the {job['side']} process failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def step_worker(spec: str) -> None:
    """One side of a pair (in its own process): time ``steps`` training steps; print JSON."""
    job = json.loads(spec)
    from attnlab.allocator import keep_freed_memory

    kept = keep_freed_memory({MALLOC_ENV: job["allocator"]})
    from attnlab.threads import apply_threads

    threads = apply_threads(10**6, override=job["threads"]).threads
    step, model = training_step(job["side"], job["shape"], job["nanogpt"])
    times, first = [], None
    for i in range(3 + job["steps"]):
        start = time.perf_counter()
        loss = step()
        if i >= 3:
            times.append(time.perf_counter() - start)
        first = loss if first is None else first
    print(json.dumps({"ms": statistics.median(times) * 1e3, "first_loss": first, "threads": threads,
                      "allocator_kept": kept, "model": model,
                      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10}))


def _in_process(job: dict[str, Any], rounds: int) -> int:
    """``--in-process``: both sides here, one step of each in turn; one ratio per round."""
    from attnlab.threads import apply_threads

    threads = apply_threads(10**6, override=job["threads"]).threads
    sides = {side: training_step(side, job["shape"], job["nanogpt"]) for side in ("attnlab", "nanoGPT")}
    first = {side: step() for side, (step, _) in sides.items()}
    for step, _ in sides.values():
        step()
        step()
    load = LoadWatch.start()
    per_round: list[dict[str, float]] = []
    for _ in range(rounds):
        times: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(job["steps"]):
            for side in (("attnlab", "nanoGPT") if i % 2 == 0 else ("nanoGPT", "attnlab")):
                start = time.perf_counter()
                sides[side][0]()
                times[side].append(time.perf_counter() - start)
        per_round.append({side: statistics.median(t) * 1e3 for side, t in times.items()})
    print(_title(job["shape"], sides["attnlab"][1], threads, "both in this process (attnlab's allocator policy), "
                 f"one step of each in turn; median of {job['steps']} steps per side per round"))
    print(f"{'round':<6} {'attnlab ms':>11} {'nanoGPT ms':>11} {'ratio':>7}")
    for i, r in enumerate(per_round, 1):
        print(f"{i:<6} {r['attnlab']:>11.2f} {r['nanoGPT']:>11.2f} {r['nanoGPT'] / r['attnlab']:>6.3f}x")
    return _summary(job["shape"], [r["attnlab"] for r in per_round], [r["nanoGPT"] for r in per_round], "rounds",
                    (first["attnlab"], first["nanoGPT"]), load)


def _title(shape: str, model: str, threads: int, how: str) -> str:
    """The first line of the output: the step, the shape, the threads and ``how`` it was timed."""
    fields, batch, _ = SHAPES[shape]
    return (f"one training step (forward, loss, backward, clipping, AdamW) of the {shape} shape: {model}, context "
            f"{fields['context']}, vocab {fields['vocab_size']}, batch {batch}, dropout 0; {threads} thread(s); {how}")


def _summary(shape: str, ours_ms: list[float], theirs_ms: list[float], unit: str, first: tuple[float, float],
             load: LoadWatch) -> int:
    """The last lines: each side's tokens/s, the verdict on the median ratio (and the spread over the
    ``unit``, pairs or rounds), both first losses and the load; one error when the losses disagree."""
    fields, batch, _ = SHAPES[shape]
    tokens = batch * fields["context"]
    ratios = [b / a for a, b in zip(ours_ms, theirs_ms)]
    print(f"attnlab: {tokens / statistics.median(ours_ms) * 1e3:,.0f} tokens/s; nanoGPT: "
          f"{tokens / statistics.median(theirs_ms) * 1e3:,.0f} tokens/s")
    print(bar_verdict("speed-up over nanoGPT's step", statistics.median(ratios), BAR, digits=3)
          + f" ({unit} {min(ratios):.3f}-{max(ratios):.3f}x)")
    ours, theirs = first
    print(f"first loss: attnlab {ours:.6f}, nanoGPT {theirs:.6f} (same weights and batch)")
    report_load(load)
    if abs(ours - theirs) > 1e-4:
        raise AttnlabError(f"the two models gave different first losses ({abs(ours - theirs):.2e} apart) from the "
                           "same weights; this is a bug, please report it with the command line above")
    return 0


def training_step(side: str, shape: str, nanogpt: str = "") -> tuple[Callable[[], float], str]:
    """One side's training step on the shape's random batch and weights (forward, loss, backward,
    clipping at 1.0, AdamW, gradients set to None), returning the loss; and the model in words.
    ``nanogpt`` (the path of nanoGPT's model.py) is read for the ``nanoGPT`` side only.
    ``tools/step_probe.py`` times the ``attnlab`` side too."""
    import torch
    import torch.nn.functional as F

    from attnlab.bench.generate import nanogpt_twin
    from attnlab.engine.schedule import make_optimizer
    from attnlab.models.gpt import GPTConfig, random_gpt

    fields, batch, _ = SHAPES[shape]
    model = random_gpt(GPTConfig(**fields, dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randint(2, fields["vocab_size"], (batch, fields["context"]), generator=gen) for _ in range(2))
    if side == "attnlab":
        net = model.train()
        opt = make_optimizer(net, 1e-3, 0.1, beta2=0.99)

        def loss_of() -> torch.Tensor:
            logits = net(x)  # (B, T, V)
            return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
    else:
        net = nanogpt_twin(model, nanogpt).train()
        net.lm_head.bias = None  # the twin's generation-only bias (-inf on pad and start) is not nanoGPT's
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter counts
            opt = net.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")

        def loss_of() -> torch.Tensor:
            return net(x, y)[1]

    def step() -> float:
        loss = loss_of()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step, f"{model.config.num_layers} layers, dim {model.config.dim}"
