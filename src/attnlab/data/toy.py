"""The toy task's data: padded random token sequences labelled by their most frequent token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.vocab import PAD_ID

__all__ = ["make_toy_data"]


def make_toy_data(n: int, *, vocab_size: int, seq_len: int, seed: int) -> dict[str, Tensor]:
    """Up to ``n`` sequences of tokens ``1..vocab_size`` (0 pads) and their majority token.

    Each sequence has between ``seq_len // 2`` and ``seq_len`` real tokens, a random quarter of
    them overwritten by its majority token. Sequences whose two most frequent tokens tie are
    dropped, so every label is well defined; class ``c`` is token ``c + 1``.
    Returns ``{"tokens": (N, seq_len) long, "labels": (N,) long}``.
    """
    g = torch.Generator().manual_seed(seed)
    V, T = vocab_size, seq_len
    lengths = torch.randint(T // 2, T + 1, (n,), generator=g)
    tokens = torch.randint(1, V + 1, (n, T), generator=g)  # (N, T)
    majority = torch.randint(1, V + 1, (n,), generator=g)
    boost = torch.rand(n, T, generator=g) < 0.25
    tokens = torch.where(boost, majority[:, None], tokens)
    valid = torch.arange(T)[None, :] < lengths[:, None]  # (N, T)
    tokens = torch.where(valid, tokens, torch.full_like(tokens, PAD_ID))
    counts = F.one_hot(tokens, V + 1)[..., 1:].sum(1)  # (N, V)
    top2 = counts.topk(2, dim=1).values
    keep = top2[:, 0] > top2[:, 1]
    labels = counts.argmax(1)
    return {"tokens": tokens[keep], "labels": labels[keep]}
