"""``attnlab bench pretrained``: a GPT-2 loaded into attnlab against the same weights in ``transformers``.

A random ``GPT2LMHeadModel`` (GPT-2 small by default: 12 layers, dim 768, 12 heads, 50,257 ids,
1,024 positions, 124 M parameters) is saved with ``save_pretrained`` into a temporary directory,
and both sides load it from there, in the same process and threads:

* load time: :func:`attnlab.pretrained.gpt2.build` (what ``--checkpoint DIR`` runs) against
  ``GPT2LMHeadModel.from_pretrained``;
* one fine-tuning step (forward, backward, AdamW; ``--batch`` x ``--seq-len``, fp32): steps/s
  (bar: ratio >= 1) and the peak memory the allocator held (bar: no higher);
* KV-cache generation: :func:`attnlab.models.gpt.generate` against ``generate`` (cache on,
  greedy), tokens/s; the tokens must be identical (bar: ratio >= 1).

Calls are timed in interleaved rounds and the medians compared. Random weights: the timings
depend on the shape, not on the values.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from attnlab.bench._common import bar_verdict, report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, peak_memory_bytes, time_interleaved
from attnlab.options import require_at_least, require_divisible

HELP = "GPT-2 in attnlab vs transformers, same weights: load time, KV-cache generation, a fine-tuning step"
EXAMPLE = """\
attnlab bench pretrained                                   # GPT-2 small, 100 new tokens, batch 4 x 256
attnlab bench pretrained --layers 2 --dim 128 --heads 4    # a quick look"""
SPEED_BAR = 1.0  # attnlab's speed over transformers'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=int, default=12, help="blocks (default 12, GPT-2 small)")
    parser.add_argument("--dim", type=int, default=768, help="width (default 768)")
    parser.add_argument("--heads", type=int, default=12, help="attention heads (default 12)")
    parser.add_argument("--vocab", type=int, default=50257, help="vocabulary (default 50,257)")
    parser.add_argument("--context", type=int, default=1024, help="positions (default 1,024)")
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens before generating (default 32)")
    parser.add_argument("--new-tokens", type=int, default=100, help="tokens generated per call (default 100)")
    parser.add_argument("--batch", type=int, default=4, help="fine-tuning batch (default 4)")
    parser.add_argument("--seq-len", type=int, default=256, help="fine-tuning tokens per row (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per model and measurement (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)


def _check(args: argparse.Namespace) -> None:
    require_at_least(args, 1, "layers", "dim", "heads", "vocab", "context", "prompt", "new-tokens", "batch", "seq-len",
                     "repeats", "threads")
    require_divisible(args, "dim", "heads")
    if args.prompt + args.new_tokens > args.context or args.seq_len > args.context:
        raise AttnlabError(f"--prompt + --new-tokens and --seq-len must fit the --context of {args.context}")


def run(args: argparse.Namespace) -> int:
    from attnlab.bench.compare import transformers_or_error
    from attnlab.models.gpt import generate
    from attnlab.pretrained.gpt2 import build
    from attnlab.pretrained.source import resolve

    _check(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    transformers = transformers_or_error("pretrained")
    # No end token: transformers' generate stops at one, or (asked for a fixed length) bans it, where
    # attnlab's greedy picks any id; with an end token of 0, small vocabularies picked it and the tokens parted
    config = transformers.GPT2Config(n_layer=args.layers, n_embd=args.dim, n_head=args.heads,
                                     vocab_size=args.vocab, n_positions=args.context, bos_token_id=0, eos_token_id=None)
    load = LoadWatch.start()
    with tempfile.TemporaryDirectory(prefix="attnlab-bench-gpt2-") as tmp:
        torch.manual_seed(args.seed)
        transformers.GPT2LMHeadModel(config).save_pretrained(tmp)
        models: dict[str, Any] = {}

        def load_ours() -> None:
            models["ours"] = build(resolve(tmp))

        def load_hf() -> None:
            models["hf"] = transformers.GPT2LMHeadModel.from_pretrained(tmp).eval()

        loads = time_interleaved({"attnlab": load_ours, "transformers": load_hf}, repeats=args.repeats)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    ours, hf = models["ours"], models["hf"]
    # The fine-tuning step first, on the heap as loading left it (as a fine-tuning run starts):
    # timed after generation, attnlab's step ran slower in the same process (README, "Pretrained models").
    # Learning rate 0: AdamW does all its work but leaves the weights as loaded, so generation
    # then compares the same weights (dropout made the two sides' updates differ).
    g = torch.Generator().manual_seed(args.seed + 1)
    batch = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=g)  # (B, T + 1)
    x, y = batch[:, :-1], batch[:, 1:]
    optimizers = {"attnlab": torch.optim.AdamW(ours.parameters(), lr=0.0),
                  "transformers": torch.optim.AdamW(hf.parameters(), lr=0.0)}
    ours.train()
    hf.train()

    def step(name: str, logits_of: Any) -> None:
        opt = optimizers[name]
        opt.zero_grad(set_to_none=True)
        logits = logits_of(x)  # (B, T, V)
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)).backward()
        opt.step()

    def step_ours() -> None:
        step("attnlab", ours)

    def step_hf() -> None:
        step("transformers", lambda ids: hf(ids).logits)

    # Two untimed steps each: the first allocates AdamW's states, and the second still ran slower
    # than the rest, on both sides.
    steps = time_interleaved({"attnlab": step_ours, "transformers": step_hf}, repeats=args.repeats, warmup=2)
    peaks = {"attnlab": peak_memory_bytes(step_ours), "transformers": peak_memory_bytes(step_hf)}

    optimizers.clear()  # their states (two copies of the weights, each) and the gradients go before decoding
    ours.zero_grad(set_to_none=True)
    hf.zero_grad(set_to_none=True)
    ours.eval()
    hf.eval()
    ours.never_generated = ()
    prompt = torch.randint(0, args.vocab, (1, args.prompt), generator=g)  # (1, P)
    tokens: dict[str, list[int]] = {}

    def gen_ours() -> None:
        tokens["ours"] = generate(ours, prompt[0].tolist(), args.new_tokens, temperature=0.0, use_cache=True)

    def gen_hf() -> None:
        with torch.inference_mode():
            out = hf.generate(prompt, max_new_tokens=args.new_tokens, do_sample=False, use_cache=True, pad_token_id=0)
        tokens["hf"] = out[0, args.prompt:].tolist()

    gens = time_interleaved({"attnlab": gen_ours, "transformers": gen_hf}, repeats=args.repeats)
    same = tokens["ours"] == tokens["hf"]

    params = sum(p.numel() for p in ours.parameters())
    print(f"GPT-2 ({args.layers} layers, dim {args.dim}, {args.heads} heads, vocab {args.vocab:,}, context "
          f"{args.context:,}; {params / 1e6:.1f} M parameters), random weights, CPU fp32, {torch.get_num_threads()} "
          f"threads, median of {args.repeats}")
    print(f"{'measurement':<44} {'attnlab':>12} {'transformers':>13} {'ratio':>7}")
    rows = [(f"load from safetensors ({size / 2**20:,.0f} MiB), s", loads, True),
            (f"greedy generation, {args.new_tokens} tokens after {args.prompt}, tokens/s", gens, False),
            (f"fine-tuning step, batch {args.batch} x {args.seq_len}, steps/s", steps, False)]
    ratios = {}
    for label, samples, lower_is_better in rows:
        a, b = median(samples["attnlab"]), median(samples["transformers"])
        work = args.new_tokens if "tokens/s" in label else 1
        shown = (a, b) if lower_is_better else (work / a, work / b)
        ratios[label] = b / a
        print(f"{label:<44} {shown[0]:>12,.2f} {shown[1]:>13,.2f} {b / a:>6.2f}x")
    print(f"{'fine-tuning step peak memory, MiB':<44} {peaks['attnlab'] / 2**20:>12,.0f} "
          f"{peaks['transformers'] / 2**20:>13,.0f} {peaks['transformers'] / max(peaks['attnlab'], 1):>6.2f}x")
    print(f"generated tokens identical: {'yes' if same else 'NO'}")
    print(bar_verdict("generation speed, attnlab / transformers", ratios[rows[1][0]], SPEED_BAR))
    print(bar_verdict("fine-tuning speed, attnlab / transformers", ratios[rows[2][0]], SPEED_BAR))
    print(bar_verdict("fine-tuning peak memory, attnlab / transformers",
                      peaks["attnlab"] / max(peaks["transformers"], 1), 1.0, at_least=False))
    report_load(load)
    if not same:
        raise AttnlabError("attnlab's greedy tokens differ from transformers' on the same weights; this is a bug, "
                           "please report it with the command line above")
    return 0
