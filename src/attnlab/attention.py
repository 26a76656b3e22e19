"""Scaled dot-product attention as pure functions, and the masks that go with it.

Everything else in attnlab wraps :func:`scaled_dot_product_attention`. There is ONE mask
convention in the whole library: a boolean (or {0, 1}) tensor where ``True``/1 means *may
attend* and ``False``/0 means *must not*; it broadcasts to ``(..., T_q, T_k)``. This is the
same convention as ``torch.nn.functional.scaled_dot_product_attention``'s boolean masks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "numpy_attention",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "combine_masks",
    "split_heads",
    "merge_heads",
]


def numpy_attention(
    x: np.ndarray,
    input_embedding_size: int = 2,
    query_key_size: int = 37,
    rng: np.random.Generator | None = None,
    weights: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Reference single-head self-attention in NumPy: ``softmax(Q K^T / sqrt(d_k)) V``.

    ``x`` is an ``n x e`` matrix (``e = input_embedding_size``, any ``n >= 1``); the result has
    exactly the same shape. ``Q = x W_Q``, ``K = x W_K`` with ``W_Q, W_K`` of shape ``e x d_k``
    and ``V = x W_V`` with ``W_V`` of shape ``e x e``. The matrices are drawn from ``rng``
    (standard normal scaled by ``1/sqrt(e)``) unless ``weights=(W_Q, W_K, W_V)`` is given.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != input_embedding_size:
        raise ValueError(
            f"x must be an n x {input_embedding_size} matrix with n >= 1, got shape {x.shape}"
        )
    e, d_k = input_embedding_size, query_key_size
    if weights is None:
        rng = rng if rng is not None else np.random.default_rng()
        scale = 1.0 / math.sqrt(e)
        w_q = rng.standard_normal((e, d_k)) * scale
        w_k = rng.standard_normal((e, d_k)) * scale
        w_v = rng.standard_normal((e, e)) * scale
    else:
        w_q, w_k, w_v = (np.asarray(w, dtype=np.float64) for w in weights)
        d_k = w_q.shape[1]
        if w_q.shape != (e, d_k) or w_k.shape != (e, d_k) or w_v.shape != (e, e):
            raise ValueError(
                f"weights must have shapes ({e}, d_k), ({e}, d_k), ({e}, {e}); "
                f"got {w_q.shape}, {w_k.shape}, {w_v.shape}"
            )
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (n, d_k), (n, d_k), (n, e)
    scores = q @ k.T / math.sqrt(d_k)  # (n, n)
    # Subtracting the row maximum leaves softmax unchanged and keeps exp() from overflowing.
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(axis=-1, keepdims=True)
    return w @ v  # (n, e)


def split_heads(x: Tensor, parts: int, num_heads: int) -> tuple[Tensor, ...]:
    """A fused projection ``x`` (B, T, parts * H * hd) -> ``parts`` views (B, H, T, hd).

    The last axis holds the parts one after another (q, k, v for ``parts=3``), each laid out head
    by head. Unbinding the parts before swapping T and H lets the backward pass stack the
    gradients straight into ``x``'s layout: one copy, where moving the parts axis to the front
    first costs a second copy to make them contiguous (the numbers are the same either way).
    """
    B, T, width = x.shape
    if width % (parts * num_heads) or width < parts * num_heads:
        raise ValueError(f"a width of {width} does not split into {parts} parts of {num_heads} heads")
    hd = width // (parts * num_heads)
    per_part = x.view(B, T, parts, num_heads, hd).unbind(2)  # parts x (B, T, H, hd)
    return tuple(t.transpose(1, 2) for t in per_part)  # parts x (B, H, T, hd)


def merge_heads(x: Tensor) -> Tensor:
    """Heads side by side again: (B, H, T, hd) -> (B, T, H * hd)."""
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)  # (B, T, H*hd)


def causal_mask(t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """A ``(t_q, t_k)`` bool mask letting query ``i`` see keys ``<= i``.

    When ``t_q < t_k`` (new queries after ``t_k - t_q`` cached keys) the mask is aligned to the
    bottom right: the last query sees every key, as it would in the full sequence.
    """
    t_k = t_q if t_k is None else t_k
    if t_q > t_k:
        raise ValueError(f"causal_mask needs t_q <= t_k, got t_q={t_q}, t_k={t_k}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(input_mask: Tensor) -> Tensor:
    """Turn a ``(B, T_k)`` {0, 1} token mask (1 = real token) into a ``(B, 1, 1, T_k)`` bool mask.

    The result broadcasts over heads and queries: no query may attend to a padding key.
    """
    if input_mask.dim() != 2:
        raise ValueError(f"input_mask must be (batch, seq_len), got shape {tuple(input_mask.shape)}")
    return input_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, T_k)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (``None`` entries are ignored; all ``None`` gives ``None``)."""
    out: Tensor | None = None
    for m in masks:
        if m is None:
            continue
        m = m.to(torch.bool)
        out = m if out is None else (out & m)
    return out


def _as_bool(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else mask.to(torch.bool)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    *,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d)) v`` over any leading dimensions, returning ``(out, weights)``.

    Shapes: ``q`` (..., T_q, d), ``k`` (..., T_k, d), ``v`` (..., T_k, d_v) -> ``out``
    (..., T_q, d_v) and ``weights`` (..., T_q, T_k), where ``weights[..., i, j]`` is how much
    query ``i`` takes from key ``j``. ``attn_mask`` (True = may attend) broadcasts to
    (..., T_q, T_k); ``is_causal`` adds :func:`causal_mask`. Masked weights are exactly zero,
    and a query with no allowed key gets zero output and zero weights -- never NaN, forward or
    backward. ``dropout_p`` drops weights (pass 0 at evaluation time).

    When no gradient is needed (autograd off, or no input requires one) the weights are computed
    in place: one (..., T_q, T_k) buffer is scaled, masked and soft-maxed, so the peak is one
    such tensor instead of two to four. Both paths give bit-identical results (tested).
    """
    if not _needs_grad(q, k, v) and not _autocasting(q):
        return _attention_in_place(q, k, v, attn_mask, dropout_p, is_causal=is_causal)
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T_q, T_k)
    mask = _as_bool(attn_mask)
    if is_causal:
        mask = combine_masks(mask, causal_mask(q.size(-2), k.size(-2), device=q.device))
    if mask is not None:
        # A finite fill (not -inf) keeps fully masked rows finite; multiplying by the mask
        # afterwards makes their weights exactly 0 and stops any gradient through them.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _autocasting(x: Tensor) -> bool:
    """Autocast picks each op's dtype (on CUDA, softmax runs and returns in float32); in-place ops
    would keep the scores' reduced dtype, so under autocast the explicit path runs, unchanged."""
    return torch.is_autocast_enabled(x.device.type)


def _blocked(attn_mask: Tensor | None, is_causal: bool, t_q: int, t_k: int, device: torch.device) -> Tensor | None:
    """Where attention is NOT allowed (the complement of the combined mask), built directly so that
    the causal part costs one bool (T_q, T_k) tensor (bottom-right aligned, as :func:`causal_mask`)."""
    blocked = None if attn_mask is None else ~attn_mask.to(torch.bool)
    if is_causal:
        future = torch.ones(t_q, t_k, dtype=torch.bool, device=device).triu_(diagonal=t_k - t_q + 1)
        blocked = future if blocked is None else (blocked | future)
    return blocked


def _attention_in_place(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout_p: float, *,
                        is_causal: bool) -> tuple[Tensor, Tensor]:
    """:func:`scaled_dot_product_attention` without autograd, in one (..., T_q, T_k) buffer.

    The same operations as the explicit path in the same order (scale, finite fill, softmax, zero
    the masked weights), each writing into the scores' own storage: the values are identical.
    """
    if is_causal and q.size(-2) > k.size(-2):
        raise ValueError(f"causal_mask needs t_q <= t_k, got t_q={q.size(-2)}, t_k={k.size(-2)}")
    weights = q @ k.transpose(-2, -1)  # (..., T_q, T_k): the only T x T float buffer
    weights.div_(math.sqrt(q.size(-1)))
    blocked = _blocked(attn_mask, is_causal, q.size(-2), k.size(-2), q.device)
    if blocked is not None:
        shape = torch.broadcast_shapes(blocked.shape, weights.shape)
        if shape != weights.shape:  # a mask with more leading dimensions than q and k (rare)
            weights = weights.expand(shape).clone()
        weights.masked_fill_(blocked, torch.finfo(weights.dtype).min)
    torch.softmax(weights, dim=-1, out=weights)  # each row reads its max and sum before writing
    if blocked is not None:
        weights.masked_fill_(blocked, 0.0)  # fully masked rows: uniform -> exactly 0, as above
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, inplace=True)
    return weights @ v, weights


def fused_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    *,
    is_causal: bool = False,
) -> Tensor:
    """The same result as :func:`scaled_dot_product_attention` (without the weights), computed
    by PyTorch's fused kernel. Tested equal to the explicit path, fully masked rows included."""
    mask = _as_bool(attn_mask)
    t_q, t_k = q.size(-2), k.size(-2)
    if is_causal and mask is None and t_q == 1:
        is_causal = False  # one new query after cached keys sees them all: nothing to mask
    if is_causal:
        if mask is None and t_q == t_k:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        # PyTorch aligns is_causal top-left when T_q != T_k; ours is bottom-right (cached keys).
        mask = combine_masks(mask, causal_mask(t_q, t_k, device=q.device))
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    # Rows with no allowed key: let them attend everywhere (finite), then zero their output.
    has_key = mask.any(dim=-1, keepdim=True)  # (..., T_q, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key, dropout_p=dropout_p)
    return out * has_key
