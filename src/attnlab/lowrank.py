"""Low-rank attention: Linformer's learned projections and the truncated-SVD view.

Both start from the observation that the ``n x n`` matrix ``P = softmax(Q K^T / sqrt(d))`` is
often close to low rank.

* :func:`svd_attention` keeps the ``rank`` largest singular values of ``P`` and returns
  ``P_k V``. It is exact when ``P`` has rank <= ``rank``; it is an analysis tool (it builds ``P``
  and its SVD, O(n^3)), the best a rank-``k`` attention matrix can do (Eckart-Young).
* :class:`LinformerAttention` never builds ``P``: learned ``k x n`` matrices ``E`` and ``F`` squeeze
  the keys and values to ``k`` rows first, ``softmax(Q (E K)^T / sqrt(d)) (F V)``, so time and
  memory are O(n k d) instead of O(n^2 d).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.attention import merge_heads, scaled_dot_product_attention, split_heads
from attnlab.errors import AttnlabError

__all__ = ["LinformerAttention", "svd_attention", "mean_pool_projection"]


def svd_attention(q: Tensor, k: Tensor, v: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Attention through the rank-``rank`` truncated SVD of ``softmax(q k^T / sqrt(d))``.

    Shapes as :func:`attnlab.attention.scaled_dot_product_attention`: ``q`` (..., T_q, d),
    ``k`` (..., T_k, d), ``v`` (..., T_k, d_v). Returns ``(out (..., T_q, d_v), approx_weights
    (..., T_q, T_k))`` with ``approx_weights = U_k S_k V_k^T``; the rows of the approximation need
    not sum to 1 or be non-negative. ``rank >= min(T_q, T_k)`` gives exact attention.
    """
    if rank < 1:
        raise AttnlabError(f"svd_attention needs rank >= 1, got {rank}")
    _, weights = scaled_dot_product_attention(q, k, v)  # (..., T_q, T_k)
    u, s, vh = torch.linalg.svd(weights, full_matrices=False)  # (..., T_q, r), (..., r), (..., r, T_k)
    r = min(rank, s.size(-1))
    approx = (u[..., :r] * s[..., None, :r]) @ vh[..., :r, :]  # (..., T_q, T_k)
    return approx @ v, approx


def mean_pool_projection(k: int, n: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """A ``k x n`` projection whose row ``j`` averages the ``j``-th of ``k`` contiguous segments.

    A principled, untrained choice for Linformer's ``E`` and ``F``: when a sequence is piecewise
    constant over those segments (or smooth), ``E K`` and ``F V`` are the segments' keys and
    values, and Linformer equals full attention exactly (each segment gets the same total weight
    in both). ``k`` must be in ``[1, n]``.
    """
    if not 1 <= k <= n:
        raise AttnlabError(f"projection size k must be in [1, n={n}], got {k}")
    seg = torch.arange(n, device=device) * k // n  # segment of each position, (n,)
    onehot = (seg[None, :] == torch.arange(k, device=device)[:, None]).to(dtype or torch.get_default_dtype())
    return onehot / onehot.sum(dim=1, keepdim=True)  # (k, n), rows sum to 1


class LinformerAttention(nn.Module):
    """Multi-head self-attention with Linformer's projections of keys and values.

    ``E`` and ``F`` are learned ``k x seq_len`` matrices shared by all heads (the paper's
    "headwise sharing"), initialised like a Johnson-Lindenstrauss projection, N(0, 1/k). An
    input shorter than ``seq_len`` uses their first ``n`` columns; a longer one is an error.

    ``forward(x, key_mask=None, *, need_weights=False) -> (out, weights | None)`` with ``x``
    (B, n, dim); ``weights`` are (B, H, n, k), the attention over the ``k`` projected keys.
    ``key_mask`` (B, n), True = real token, zeroes padded keys and values before projection.
    There is no causal variant: the projection mixes every position into every projected key.
    """

    def __init__(self, *, dim: int, num_heads: int, seq_len: int, k: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise AttnlabError(f"dim={dim} must be divisible by num_heads={num_heads}")
        if not 1 <= k <= seq_len:
            raise AttnlabError(f"projection size k must be in [1, seq_len={seq_len}], got {k}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.seq_len, self.k, self.dropout = seq_len, k, dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # [W_Q | W_K | W_V] for all heads
        self.W_O = nn.Linear(dim, dim)
        self.E = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # keys:   (k, seq_len)
        self.F = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # values: (k, seq_len)

    def forward(
        self, x: Tensor, key_mask: Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        n = x.size(1)
        if n > self.seq_len:
            raise AttnlabError(
                f"sequence length {n} exceeds LinformerAttention seq_len={self.seq_len}; "
                f"build the layer with seq_len >= {n} or truncate the input"
            )
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)  # each (B, H, n, hd)
        if key_mask is not None:
            keep = key_mask.to(k.dtype)[:, None, :, None]  # (B, 1, n, 1)
            k, v = k * keep, v * keep
        k = self.E[:, :n] @ k  # (k, n) @ (B, H, n, hd) -> (B, H, k, hd)
        v = self.F[:, :n] @ v  # (B, H, k, hd)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, n, hd), (B, H, n, k)
        return self.W_O(merge_heads(out)), (weights if need_weights else None)
