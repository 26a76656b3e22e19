"""``attnlab bench bert``: inference tokens/s of attnlab's BERT vs ``transformers``' of the same weights.

A random ``BertForSequenceClassification`` (BERT-base's shape by default: 12 layers, dim 768, 12
heads, MLP 3072, vocabulary 30,522, 512 positions) is built by ``transformers``, and the same
weights are mapped into :class:`attnlab.models.bert.BertClassifier` through
:mod:`attnlab.pretrained.bert` (the loader ``--checkpoint DIR`` uses, without the files). Both
run forward passes (eval mode, no gradients) on the same batch of ``--batch`` x ``--seq-len``
token ids, in the same process and threads; ``transformers`` with its fastest attention
(``sdpa``). With ``--padded`` the rows have random lengths between half and all of
``--seq-len`` (a batch of real texts); without it every row is full. Calls are timed in
interleaved rounds and the medians compared; the two models' logits must agree (the largest
difference is printed). The bar: attnlab at least as fast (ratio >= 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from attnlab.bench._common import bar_verdict, report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, time_interleaved
from attnlab.options import require_at_least, require_divisible

HELP = "inference tokens/s of attnlab's BERT vs transformers' BertForSequenceClassification, same weights"
EXAMPLE = """\
attnlab bench bert                          # BERT-base shape, batch 8 x 128 tokens, CPU fp32
attnlab bench bert --padded --seq-len 256   # rows of random lengths, as reviews are"""
SPEED_BAR = 1.0  # attnlab's tokens/s over transformers'
TOLERANCE = 1e-3  # the largest logit difference accepted between the two (fp32: ~1e-5 is typical)
FIRST_WORD = 1000  # the random texts' lowest id: bert-base-uncased's words start past [PAD], [unused...], [CLS], ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=int, default=12, help="encoder layers (default 12, BERT-base)")
    parser.add_argument("--dim", type=int, default=768, help="hidden size (default 768)")
    parser.add_argument("--heads", type=int, default=12, help="attention heads (default 12)")
    parser.add_argument("--mlp-dim", type=int, default=3072, help="feed-forward width (default 3072)")
    parser.add_argument("--vocab", type=int, default=30522, help="vocabulary (default 30,522, bert-base-uncased)")
    parser.add_argument("--batch", type=int, default=8, help="texts per call (default 8)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per text (default 128; at most 512)")
    parser.add_argument("--padded", action="store_true", help="random lengths in [seq-len/2, seq-len] per row")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per model (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="cpu (default; fp32) or cuda (fp32 too, so that the logits compare)")


def _models(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(ours, transformers')`` with the same random weights, in eval mode."""
    from attnlab.bench.compare import transformers_or_error
    from attnlab.models.bert import build_bert
    from attnlab.pretrained.bert import from_hf, model_config
    from attnlab.pretrained.source import Source

    transformers = transformers_or_error("bert")
    config = transformers.BertConfig(vocab_size=args.vocab, hidden_size=args.dim, num_hidden_layers=args.layers,
                                     num_attention_heads=args.heads, intermediate_size=args.mlp_dim,
                                     max_position_embeddings=512, num_labels=2)
    config._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    hf = transformers.BertForSequenceClassification(config).eval()
    as_dict = config.to_dict()
    source = Source(spec="random weights", kind="hf", directory=Path("."), weights=Path("(in memory)"), config=as_dict)
    state, new = from_hf(hf.state_dict(), as_dict, source, num_classes=2)
    assert not new
    ours = build_bert(model_config(as_dict), args.vocab, num_classes=2)
    ours.load_state_dict(state)
    return ours.eval(), hf


def run(args: argparse.Namespace) -> int:
    from attnlab.device import bench_device

    require_at_least(args, 1, "layers", "dim", "heads", "mlp-dim", "vocab", "batch", "seq-len", "repeats", "threads")
    require_divisible(args, "dim", "heads")
    require_at_least(args, FIRST_WORD + 1, "vocab", why=f"the texts are random ids from {FIRST_WORD:,} up")
    if args.seq_len > 512:
        raise AttnlabError(f"--seq-len must be at most 512 (BERT's positions), got {args.seq_len}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = bench_device(args.device)
    load = LoadWatch.start()
    ours, hf = (m.to(device) for m in _models(args))
    g = torch.Generator().manual_seed(args.seed + 1)
    B, T = args.batch, args.seq_len
    ids = torch.randint(FIRST_WORD, args.vocab, (B, T), generator=g)  # (B, T)
    lengths = (torch.randint(T // 2, T + 1, (B,), generator=g) if args.padded else torch.full((B,), T))
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T): 1 = a real token
    ids, lengths, mask = ids.mul(mask).to(device), lengths.to(device), mask.to(device)
    logits: dict[str, torch.Tensor] = {}

    def ours_fn() -> None:
        with torch.inference_mode():
            logits["ours"] = ours(ids, lengths)

    def hf_fn() -> None:
        with torch.inference_mode():
            logits["hf"] = hf(input_ids=ids, attention_mask=mask).logits

    samples = time_interleaved({"attnlab BertClassifier": ours_fn, "HF BertForSequenceClassification": hf_fn},
                               repeats=args.repeats, device=device)
    tokens = int(lengths.sum())
    print(f"BERT forward (eval, no gradients), random weights: {args.layers} layers, dim {args.dim}, {args.heads} "
          f"heads, MLP {args.mlp_dim}, vocab {args.vocab}; batch {B} x {T} tokens "
          f"({'padded, ' if args.padded else ''}{tokens} real), {device.type}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"{'model':<34} {'ms/call':>9} {'tokens/s':>11}")
    for name, s in samples.items():
        print(f"{name:<34} {1000 * median(s):>9.1f} {tokens / median(s):>11,.0f}")
    ratio = median(samples["HF BertForSequenceClassification"]) / median(samples["attnlab BertClassifier"])
    diff = (logits["ours"].float() - logits["hf"].float()).abs().max().item()
    print(bar_verdict("attnlab / transformers tokens/s", ratio, SPEED_BAR))
    print(f"largest logit difference: {diff:.2e}")
    report_load(load)
    if diff > TOLERANCE:
        raise AttnlabError(f"the two models' logits differ by {diff:.3g} (> {TOLERANCE:g}); this is a bug, please "
                           "report it with the command line above")
    return 0
