"""``attnlab bench gpt``: training throughput of DialogueGPT vs Hugging Face GPT-2 of the same size.

Both models get identical shapes (layers, width, heads, feed-forward width, context,
vocabulary, tied output layer: the parameter counts are printed and must match), the same
random batch, the same AdamW settings and the same number of threads, in the same process. One
timed step = forward + loss + backward + optimizer step, each model through its own native
path: ours through :class:`~attnlab.losses.DialogueLoss`, GPT-2 through ``labels=`` (its
built-in shifted cross-entropy) with its fastest attention (``sdpa``) and no KV cache. Steps
are timed in interleaved rounds and the medians compared (:mod:`attnlab.bench.compare`).
"""

from __future__ import annotations

import argparse

import torch

from attnlab.bench.compare import Contender, compare_training, transformers_or_error
from attnlab.options import require_at_least, require_divisible, require_fraction

HELP = "training tokens/s of DialogueGPT vs Hugging Face GPT-2 of identical size (CPU, or a GPU with --device cuda)"
EXAMPLE = "attnlab bench gpt --layers 4 --dim 256 --heads 4 --context 128 --vocab 8000 --batch 16"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=int, default=4, help="Transformer blocks (default 4)")
    parser.add_argument("--dim", type=int, default=256, help="model width (default 256)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--context", type=int, default=128, help="sequence length = context (default 128)")
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size (default 8000)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step (default 16)")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout of both models (default 0)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model (default 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="cpu (default; fp32) or cuda (bf16 autocast for both models; peak GPU memory too)")


def _models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    from attnlab.models.gpt import DialogueGPT, GPTConfig

    transformers = transformers_or_error("gpt")
    transformers.logging.set_verbosity_error()  # config chatter about unused GPT-2 defaults
    ours = DialogueGPT(GPTConfig(vocab_size=args.vocab, context=args.context, dim=args.dim,
                                 num_heads=args.heads, num_layers=args.layers, mlp_dim=4 * args.dim,
                                 dropout=args.dropout, tie_weights=True))
    hf_cfg = transformers.GPT2Config(vocab_size=args.vocab, n_positions=args.context, n_embd=args.dim,
                                     n_layer=args.layers, n_head=args.heads, n_inner=4 * args.dim,
                                     resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                                     tie_word_embeddings=True, use_cache=False,
                                     bos_token_id=None, eos_token_id=None, loss_type="ForCausalLM")
    hf_cfg._attn_implementation = "sdpa"
    hf = transformers.GPT2LMHeadModel(hf_cfg)
    return ours, hf


def run(args: argparse.Namespace) -> int:
    from attnlab.device import bench_device
    from attnlab.losses import DialogueLoss

    require_at_least(args, 1, "layers", "dim", "heads", "context", "vocab", "batch", "repeats", "threads")
    require_divisible(args, "dim", "heads")
    require_fraction(args, "dropout")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = bench_device(args.device)
    torch.manual_seed(args.seed)
    ours, hf = (m.to(device) for m in _models(args))
    ids = torch.randint(0, args.vocab, (args.batch, args.context), device=device)  # (B, T), no padding
    batch = {"input_ids": ids}
    loss_fn = DialogueLoss()
    compare_training(
        Contender("attnlab DialogueGPT", ours, lambda: loss_fn(ours, batch)[0]),
        Contender("HF GPT2LMHeadModel", hf, lambda: hf(input_ids=ids, labels=ids).loss),
        device=device, repeats=args.repeats, per_step=args.batch * args.context, unit="tokens", rate_format=",.0f",
        name_width=22,
        what=f"training step (forward + loss + backward + AdamW), batch {args.batch} x {args.context} tokens, "
             f"{args.layers} layers, dim {args.dim}, {args.heads} heads, vocab {args.vocab}, dropout {args.dropout}")
    return 0
