"""``attnlab bench generate``: KV-cache vs uncached generation of DialogueGPT, and against
nanoGPT's ``generate`` with the same weights; same tokens.

Both of our paths run :func:`attnlab.models.gpt.generate_batch` greedily from the same prompt
(default: the start token alone; ``--batch N``: N copies of it, decoded as one batch) for
``--num-tokens`` new words, in interleaved rounds (see :mod:`attnlab.measure`); the medians are
compared and the outputs must be identical token for token (the benchmark fails otherwise). The
uncached path is nanoGPT's: every new word re-runs the model over the whole window and applies
the output layer to the last position only. With ``--nanogpt PATH/model.py`` (nanoGPT's own
file, which attnlab does not ship) a third candidate is nanoGPT's ``GPT.generate`` on a nanoGPT
``GPT`` holding the same weights (greedy: ``top_k=1``; its output layer gets a bias of -inf on
the pad and start ids, which attnlab never generates, so that both choose among the same ids).
With ``--checkpoint`` the trained model is used; without it, a model of the default GPT preset's
shape (context 256) with random weights (the timing depends on the shape, not on the weights;
the tokens then are gibberish, but still compared). The bars are 5x over no cache and 8x over
nanoGPT; a miss is printed as ``MISSED``, with the per-round ratios and the load average.
The one-row step runs in C++ where this machine can build it and in Python elsewhere
(``ATTNLAB_DECODE``, :mod:`attnlab.models.gpt_step`); it is built before the clock starts, and the
output says which ran.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
from pathlib import Path
from typing import Any

import torch

from attnlab.bench._common import bar_verdict, report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, time_interleaved
from attnlab.options import require_at_least, require_divisible
from attnlab.threads import apply_threads
from attnlab.vocab import PAD_ID, START_ID

SPEEDUP_BAR = 5.0  # the KV cache must make greedy decoding at least this much faster
NANOGPT_BAR = 8.0  # and at least this much faster than nanoGPT's generate with the same weights

HELP = "KV-cache vs uncached generation speed of DialogueGPT (identical tokens checked)"
EXAMPLE = """\
attnlab bench generate --checkpoint runs/gpt-default
attnlab bench generate --context 256 --num-tokens 256
attnlab bench generate --nanogpt ~/src/nanoGPT/model.py           # also against nanoGPT's generate
attnlab bench generate --batch 8
attnlab bench generate --device cuda --nanogpt ~/src/nanoGPT/model.py   # on a GPU"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="PATH", default=None,
                        help="a trained `attnlab train gpt` run (default: random weights, shape below)")
    parser.add_argument("--num-tokens", type=int, default=256, help="new words per generation (default 256)")
    parser.add_argument("--prompt", default="", help="prompt text (default: empty = the start token)")
    parser.add_argument("--context", type=int, default=256,
                        help="context of the random model (default 256, the GPT preset's)")
    parser.add_argument("--dim", type=int, default=128, help="width of the random model (default 128)")
    parser.add_argument("--layers", type=int, default=4, help="layers of the random model (default 4)")
    parser.add_argument("--heads", type=int, default=4, help="heads of the random model (default 4)")
    parser.add_argument("--vocab", type=int, default=6187,
                        help="vocabulary of the random model (default 6187, the default run's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: attnlab's policy: one per core, or ATTNLAB_THREADS)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--batch", type=int, default=1, help="prompts decoded at once (default 1)")
    parser.add_argument("--nanogpt", metavar="PATH", default=None,
                        help="nanoGPT's model.py (from github.com/karpathy/nanoGPT): also time its generate "
                             "on the same weights")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="cpu (default) or cuda (fp32 on the GPU; each call is timed until the GPU is done)")


def _model(args: argparse.Namespace) -> tuple[Any, list[int], str]:
    """The trained model of ``--checkpoint`` and the ids of ``--prompt``, or a model of the shape
    options with random weights and the start token (a random model has no tokenizer)."""
    from attnlab.data.tokenizer import MyTokenizer, prompt_ids
    from attnlab.models.gpt import GPTConfig, random_gpt
    from attnlab.tasks import load_trained

    if args.checkpoint is not None:
        _, model, meta = load_trained(args.checkpoint, tasks=("gpt",), what="a DialogueGPT language model",
                                      hint="pass the run directory of an `attnlab train gpt` run")
        stream = meta["config"]["data"]["mode"] == "stream"
        prefix = prompt_ids(MyTokenizer.from_dict(meta["tokenizer"]), args.prompt, stream)
        return model, prefix, f"trained {args.checkpoint}"
    shape = GPTConfig(vocab_size=args.vocab, context=args.context, dim=args.dim, num_heads=args.heads,
                      num_layers=args.layers, mlp_dim=4 * args.dim)
    return random_gpt(shape, seed=args.seed), [START_ID], "random weights"


def nanogpt_model_file(path: str | Path) -> Path:
    """``path`` (``~`` expanded) when it is a file; else one error asking for nanoGPT's ``model.py``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise AttnlabError(f"no nanoGPT model file at {file}; pass the model.py of a nanoGPT checkout")
    return file


def nanogpt_twin(model: Any, path: str | Path) -> Any:
    """nanoGPT's ``GPT`` (loaded from its ``model.py`` at ``path``) holding ``model``'s weights, in
    eval mode, with a -inf bias on the logits of the ids attnlab never generates (pad and start).
    Needs what nanoGPT's architecture can express: tied head, MLP width 4 * dim."""
    c = model.config
    if not c.tie_weights or c.mlp_dim != 4 * c.dim:
        raise AttnlabError("nanoGPT's GPT ties its output layer and has an MLP 4 * dim wide; this model has "
                           f"tie_weights={c.tie_weights}, mlp_dim={c.mlp_dim}; compare a model of the default shape")
    file = nanogpt_model_file(path)
    spec = importlib.util.spec_from_file_location("nanogpt_model", file)
    if spec is None or spec.loader is None:  # a file, but not one Python can load as a module
        raise AttnlabError(f"{file} cannot be loaded as a Python module; pass the model.py of a nanoGPT checkout")
    nano = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(nano)
        config = nano.GPTConfig(block_size=c.context, vocab_size=c.vocab_size, n_layer=c.num_layers,
                                n_head=c.num_heads, n_embd=c.dim, dropout=0.0, bias=c.bias)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
            twin = nano.GPT(config).eval()
    except Exception as exc:  # noqa: BLE001  (someone else's file: any failure is the same advice)
        raise AttnlabError(f"{file} did not build a nanoGPT GPT ({type(exc).__name__}: {exc}); pass the "
                           "model.py of a nanoGPT checkout") from None
    ours = model.state_dict()
    names = {"norm1": "ln_1", "attn.qkv": "attn.c_attn", "attn.W_O": "attn.c_proj", "norm2": "ln_2",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    theirs = {"transformer.wte.weight": ours["tok.weight"], "transformer.wpe.weight": ours["pos.weight"],
              "lm_head.weight": ours["tok.weight"], "transformer.ln_f.weight": ours["norm.weight"]}
    if c.bias:
        theirs["transformer.ln_f.bias"] = ours["norm.bias"]
    for i in range(c.num_layers):
        for a, b in names.items():
            for kind in ("weight", "bias") if c.bias else ("weight",):
                theirs[f"transformer.h.{i}.{b}.{kind}"] = ours[f"transformer.layers.{i}.{a}.{kind}"]
    twin.load_state_dict(theirs, strict=False)  # (nanoGPT's causal-mask buffer is not a weight)
    ban = torch.zeros(c.vocab_size)
    ban[list(getattr(model, "never_generated", (PAD_ID, START_ID)))] = -math.inf  # the ids generate never picks
    twin.lm_head.bias = torch.nn.Parameter(ban, requires_grad=False)
    return twin


def _ratios(samples: dict[str, list[float]], slow: str, fast: str) -> str:
    """``rounds 4.90-5.60x``: the range of the per-round ratios ``slow / fast``."""
    per_round = [a / b for a, b in zip(samples[slow], samples[fast])]
    return f"rounds {min(per_round):.2f}-{max(per_round):.2f}x"


def run(args: argparse.Namespace) -> int:
    from attnlab.device import bench_device
    from attnlab.models.configs import DECODE_ENV, decode_backend
    from attnlab.models.gpt import generate_batch
    from attnlab.models.gpt_step_build import native_for

    require_at_least(args, 1, "num-tokens", "repeats", "batch", "threads", "context", "dim", "layers", "heads", "vocab")
    if args.checkpoint is None:  # the random model's shape, checked before the C++ step's build below
        require_divisible(args, "dim", "heads")
        require_at_least(args, START_ID + 1, "vocab", why=f"ids 0-{START_ID} are the special tokens")
        if args.prompt:
            raise AttnlabError("--prompt needs --checkpoint (a random model has no tokenizer)")
    device = bench_device(args.device)
    backend = decode_backend()
    native = native_for(backend)  # built (the first time) or loaded before any clock starts
    in_cpp = native is not None and args.batch == 1  # (batches always run in Python)
    threads = apply_threads(override=args.threads)
    model, prefix, what = _model(args)
    model.to(device)
    prompts = [prefix] * args.batch
    twin = nanogpt_twin(model, args.nanogpt).to(device) if args.nanogpt is not None else None
    load = LoadWatch.start()
    outputs: dict[str, list[list[int]]] = {}

    def path(use_cache: bool):
        def fn() -> None:
            outputs["KV cache" if use_cache else "no cache"] = generate_batch(model, prompts, args.num_tokens,
                                                                             use_cache=use_cache)
        return fn

    fns = {"KV cache": path(True), "no cache": path(False)}
    if twin is not None:
        idx = torch.tensor(prompts, device=device)  # (batch, T): nanoGPT takes equal-length rows

        def nanogpt() -> None:
            with torch.no_grad():
                out = twin.generate(idx, args.num_tokens, temperature=1.0, top_k=1)  # (batch, T + new)
            outputs["nanoGPT"] = out[:, len(prefix):].tolist()
        fns["nanoGPT"] = nanogpt
    samples = time_interleaved(fns, repeats=args.repeats, device=device)
    c = model.config
    rows = f"{args.batch} prompts" if args.batch > 1 else "a prompt"
    print(f"greedy generation of {args.num_tokens} words after {rows} of {len(prefix)} tokens, {what}: "
          f"{c.num_layers} layers, dim {c.dim}, {c.num_heads} heads, context {c.context}, vocab {c.vocab_size}; "
          f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else threads.note()}; median of "
          f"{args.repeats} interleaved rounds")
    steps = "one row" if args.batch == 1 else f"{args.batch} rows"
    print(f"cached steps of {steps} in {'C++' if in_cpp else 'Python'} ({DECODE_ENV}={backend})")
    print(f"{'path':<10} {'s':>8} {'ms/word':>9}")  # ms per word of one row: the batch's time / (words * rows)
    for name, s in samples.items():
        print(f"{name:<10} {median(s):>8.3f} {1000 * median(s) / args.num_tokens / args.batch:>9.3f}")
    ratio = median(samples["no cache"]) / median(samples["KV cache"])
    print(bar_verdict("speed-up with the KV cache", ratio, SPEEDUP_BAR)
          + f" ({_ratios(samples, 'no cache', 'KV cache')})")
    if twin is not None:
        ratio = median(samples["nanoGPT"]) / median(samples["KV cache"])
        print(bar_verdict("speed-up over nanoGPT's generate", ratio, NANOGPT_BAR)
              + f" ({_ratios(samples, 'nanoGPT', 'KV cache')})")
        if ratio < NANOGPT_BAR and not in_cpp and args.batch == 1:
            print(f"(the one-row step ran in Python: unset {DECODE_ENV} for the C++ one)" if backend == "python" else
                  "(the one-row step ran in Python; the C++ one needs a C++ compiler, ninja and Python's headers: "
                  "pip install 'attnlab[native]' brings ninja)")
    else:
        print("nanoGPT: not compared (pass --nanogpt PATH/model.py of a nanoGPT checkout)")
    same = all(out == outputs["KV cache"] for out in outputs.values())
    print(f"identical tokens: {'yes' if same else 'NO'} ({', '.join(outputs)})")
    report_load(load)
    if not same:
        raise AttnlabError("the paths generated different tokens; this is a bug, please report it with the "
                           "command line above")
    return 0
