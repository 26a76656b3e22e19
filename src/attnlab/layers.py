"""Transformer building blocks: heads, multi-head attention, feed-forward, residual blocks, stacks.

Every block calls the pure functions of :mod:`attnlab.attention`; nothing here re-implements
the attention math. Two block styles are provided, as in the course:

* pre-norm (``AttentionResidual`` / ``Transformer``): ``x = x + attn(norm1(x))`` then
  ``x = x + mlp(norm2(x))`` -- the GPT / ViT style;
* post-norm (``SelfAttention`` / ``TransformerBlock``): ``x = norm1(x + attn(x))`` then
  ``x = norm2(x + mlp(x))`` -- the original "Attention is all you need" style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention import fused_attention, merge_heads, scaled_dot_product_attention, split_heads
from attnlab.attention_kernel import causal_self_attention, kernel_for

if TYPE_CHECKING:
    from attnlab.positional import RotaryEmbedding

__all__ = [
    "AttentionHead",
    "MultiHeadedAttention",
    "LayerCache",
    "KVCache",
    "FFN",
    "DropPath",
    "AttentionResidual",
    "Transformer",
    "SelfAttention",
    "TransformerBlock",
    "masked_mean",
]


class AttentionHead(nn.Module):
    """One attention head: ``W_Q, W_K`` in ``R^{dim x head_dim}`` and ``W_V`` in ``R^{dim x value_dim}``.

    ``forward(x, attn_mask=None) -> (out, A)`` with ``x`` (B, T, dim), ``out`` (B, T, value_dim)
    and ``A`` (B, T, T), where ``A[b, i, j]`` is the weight of token ``j`` for token ``i``.
    ``value_dim`` defaults to ``head_dim`` (the head of a multi-head layer); the course's
    single-head :class:`attnlab.models.text.Attention` keeps the model width (``value_dim=dim``).
    """

    def __init__(self, dim: int, head_dim: int, *, value_dim: int | None = None, bias: bool = False) -> None:
        super().__init__()
        self.W_Q = nn.Linear(dim, head_dim, bias=bias)
        self.W_K = nn.Linear(dim, head_dim, bias=bias)
        self.W_V = nn.Linear(dim, value_dim or head_dim, bias=bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return scaled_dot_product_attention(self.W_Q(x), self.W_K(x), self.W_V(x), attn_mask)


class LayerCache:
    """Keys and values of the positions seen so far by one attention layer, (B, H, T, hd) each.

    A static cache: the first :meth:`append` allocates (B, H, capacity, hd) buffers (``capacity``
    positions, e.g. the model's context; doubled when outgrown, or from 64 when None), each later
    one copies only its new positions into them, and the keys and values handed to attention are
    views of the filled part. So a decoding step allocates nothing for the cache (a ``torch.cat``
    per step would allocate and copy the whole cache).
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._k: Tensor | None = None  # (B, H, capacity, hd)
        self._v: Tensor | None = None
        self.length = 0

    @property
    def k(self) -> Tensor | None:
        return None if self._k is None else self._k.narrow(-2, 0, self.length)

    @property
    def v(self) -> Tensor | None:
        return None if self._v is None else self._v.narrow(-2, 0, self.length)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions and return all keys and values so far, (B, H, T_old + T_new, hd)."""
        start, new = self.length, k.size(-2)
        end = start + new
        keys, values = self._k, self._v
        if keys is None or values is None or end > keys.size(-2):
            keys, values = self._grow(k, v, end)
        keys.narrow(-2, start, new).copy_(k)
        values.narrow(-2, start, new).copy_(v)
        self.length = end
        return keys.narrow(-2, 0, end), values.narrow(-2, 0, end)

    def buffers(self, room: int) -> tuple[Tensor, Tensor]:
        """The whole (B, H, capacity, hd) key and value buffers, grown first if they cannot take
        ``room`` more positions: for a step that writes its new positions into them itself (and
        then adds them to :attr:`length`). The cache must hold a position already."""
        if self._k is None or self._v is None:
            raise ValueError("the cache is empty: append the prompt's keys and values first")
        if self.length + room > self._k.size(-2):
            self._grow(self._k, self._v, self.length + room)
        assert self._k is not None and self._v is not None
        return self._k, self._v

    def _grow(self, k: Tensor, v: Tensor, end: int) -> tuple[Tensor, Tensor]:
        """New buffers for at least ``end`` positions, holding the cached ones."""
        old = 0 if self._k is None else self._k.size(-2)
        capacity = max(end, 2 * old, self.capacity or 64)
        new_k = k.new_empty(*k.shape[:-2], capacity, k.size(-1))  # (B, H, capacity, hd)
        new_v = v.new_empty(*v.shape[:-2], capacity, v.size(-1))
        if self._k is not None and self._v is not None and self.length:
            new_k.narrow(-2, 0, self.length).copy_(self._k.narrow(-2, 0, self.length))
            new_v.narrow(-2, 0, self.length).copy_(self._v.narrow(-2, 0, self.length))
        self._k, self._v = new_k, new_v
        return new_k, new_v


@dataclass
class KVCache:
    """A key/value cache for incremental decoding: one :class:`LayerCache` per layer, each
    preallocated for ``capacity`` positions (None: grown as needed)."""

    num_layers: int
    layers: list[LayerCache] = field(default_factory=list)
    capacity: int | None = None

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = [LayerCache(self.capacity) for _ in range(self.num_layers)]

    @property
    def length(self) -> int:
        """Number of positions already cached."""
        return self.layers[0].length if self.layers else 0


class MultiHeadedAttention(nn.Module):
    """All heads in one vectorised pass: project, split into heads, attend, concatenate, W_O.

    The query/key/value projections of every head are one ``(dim -> 3 * num_heads * head_dim)``
    linear layer (the same layout as ``nn.MultiheadAttention.in_proj_weight``); ``W_O`` maps
    ``num_heads * head_dim -> dim``. When the attention weights are not requested, PyTorch's
    fused kernel computes the same result (tested equal to the explicit path). ``native=True``
    (DialogueGPT's blocks) lets causal self-attention over short windows on the CPU run in
    attnlab's C++ kernel (:mod:`attnlab.attention_kernel`), where it serves.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        rotary: RotaryEmbedding | None = None,
        native: bool = False,
    ) -> None:
        super().__init__()
        assert dim > 0 and num_heads > 0 and head_dim > 0, "dim, num_heads and head_dim must be positive"
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=bias)  # [W_Q | W_K | W_V] for all heads
        self.W_O = nn.Linear(inner, dim, bias=bias)
        self.dropout = dropout
        self.rotary = rotary
        self.native = native  # causal self-attention over short windows on the CPU in C++ where it serves

    def to_torch(self) -> nn.MultiheadAttention:
        """An ``nn.MultiheadAttention(batch_first=True)`` with the same weights (needs
        ``head_dim * num_heads == dim`` and biases): the reference for tests and benchmarks.
        Torch's packed ``in_proj_weight`` is ``[W_Q; W_K; W_V]``, the layout of our ``qkv``."""
        dim = self.W_O.out_features
        assert self.num_heads * self.head_dim == dim, "nn.MultiheadAttention needs num_heads * head_dim == dim"
        assert self.qkv.bias is not None, "nn.MultiheadAttention has biases; build this module with bias=True"
        ref = nn.MultiheadAttention(dim, self.num_heads, batch_first=True).to(self.qkv.weight)
        with torch.no_grad():
            ref.in_proj_weight.copy_(self.qkv.weight)
            ref.in_proj_bias.copy_(self.qkv.bias)
            ref.out_proj.weight.copy_(self.W_O.weight)
            ref.out_proj.bias.copy_(self.W_O.bias)
        return ref

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: LayerCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, T, dim) -> ``(out (B, T, dim), weights (B, H, T, T_k) or None)``.

        With ``cache``, ``x`` holds only the new positions; keys and values of earlier ones come
        from the cache (and the new ones are appended to it), and ``is_causal`` aligns the causal
        mask to the bottom right.
        """
        qkv = self.qkv(x)  # (B, T, 3 * H * hd)
        p = self.dropout if self.training else 0.0
        if (self.native and is_causal and attn_mask is None and cache is None and self.rotary is None
                and not need_weights):
            kernel = kernel_for(qkv, p)  # short windows on the CPU: attnlab.attention_kernel
            if kernel is not None:
                return self.W_O(causal_self_attention(kernel, qkv, self.num_heads)), None
        q, k, v = split_heads(qkv, 3, self.num_heads)  # each (B, H, T, hd)
        offset = cache.length if cache is not None else 0
        if self.rotary is not None:
            q, k = self.rotary(q, k, offset=offset)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, T_k, hd) with T_k = offset + T
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal=is_causal)
        else:
            out, weights = fused_attention(q, k, v, attn_mask, p, is_causal=is_causal), None
        return self.W_O(merge_heads(out)), weights  # heads concatenated: (B, T, H*hd) -> (B, T, dim)


ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}  # name -> F.gelu's `approximate`


def gelu_approximation(activation: str) -> str:
    """``F.gelu``'s ``approximate`` argument for an activation name (``gelu`` or ``gelu_tanh``)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


class FFN(nn.Module):
    """Position-wise feed-forward network: ``Linear -> GELU -> Linear -> dropout``.

    The blocks normalise before (pre-norm) or after (post-norm) calling it. ``activation`` is
    ``"gelu"`` (exact, the default) or ``"gelu_tanh"`` (the tanh approximation GPT-2 was trained with).
    """

    def __init__(self, dim: int, mlp_dim: int, *, dropout: float = 0.0, bias: bool = True,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, mlp_dim, bias=bias)
        self.fc2 = nn.Linear(mlp_dim, dim, bias=bias)
        self.drop = nn.Dropout(dropout)
        self.approximate = gelu_approximation(activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))
        return self.drop(x) if self.training else x  # (an eval-mode Dropout call still costs ~5 us)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): while training, drop a residual branch for a random
    ``p`` of the samples in the batch and scale the kept ones by ``1 / (1 - p)``. Identity at
    evaluation (and never called then: the blocks skip it)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        assert 0.0 <= p < 1.0, f"drop-path rate must be in [0, 1), got {p}"
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p  # (B, 1, 1)
        return x * keep.to(x.dtype) / (1.0 - self.p)


class AttentionResidual(nn.Module):
    """The pre-norm block (GPT-2, ViT): ``x = x + attn(norm1(x))``, then ``x = x + mlp(norm2(x))``.

    ``head_dim`` is the width of each head; ``dropout`` acts on both residual branches and
    ``attn_dropout`` on the attention weights (inside PyTorch's fused kernel, which takes ``dropout_p``).
    ``bias=False`` drops the biases of every linear layer and LayerNorm (as nanoGPT can), and
    ``drop_path`` drops each residual branch for a random share of the samples (stochastic depth).
    ``activation`` is the FFN's GELU (``"gelu"`` or ``"gelu_tanh"``) and ``norm_eps`` the LayerNorms' eps;
    ``native`` goes to :class:`MultiHeadedAttention`.
    """

    def __init__(
        self,
        dim: int,
        head_dim: int,
        mlp_dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        bias: bool = True,
        rotary: RotaryEmbedding | None = None,
        activation: str = "gelu",
        norm_eps: float = 1e-5,
        native: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.attn = MultiHeadedAttention(dim, num_heads, head_dim, dropout=attn_dropout, bias=bias, rotary=rotary,
                                         native=native)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, bias=bias)
        self.mlp = FFN(dim, mlp_dim, dropout=dropout, bias=bias, activation=activation)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: LayerCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, T, dim) -> ``(x, weights (B, H, T, T_k) or None)``."""
        a, weights = self.attn(self.norm1(x), attn_mask, is_causal=is_causal, need_weights=need_weights,
                               cache=cache)
        x = x + self._branch(a, self.drop)
        x = x + self._branch(self.mlp(self.norm2(x)))  # (the MLP ends with its own dropout)
        return x, weights

    def _branch(self, y: Tensor, dropout: nn.Module | None = None) -> Tensor:
        """Dropout and stochastic depth on a residual branch, while training only (even an
        identity call costs time in the one-token decoding steps)."""
        if self.training:
            y = dropout(y) if dropout is not None else y
            y = self.drop_path(y) if self.drop_path is not None else y
        return y


class Transformer(nn.Module):
    """A stack of ``num_layers`` pre-norm :class:`AttentionResidual` blocks (no final LayerNorm).

    ``forward(x, attn_mask=None) -> (x, attentions)``; ``attentions`` is a list with one
    (B, H, T_q, T_k) tensor per layer when ``need_weights=True``, else ``None``.
    """

    def __init__(
        self,
        dim: int,
        head_dim: int,
        mlp_dim: int,
        num_heads: int,
        num_layers: int,
        *,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        bias: bool = True,
        rotary: RotaryEmbedding | None = None,
        activation: str = "gelu",
        norm_eps: float = 1e-5,
        native: bool = False,
    ) -> None:
        super().__init__()
        # stochastic depth grows linearly with depth, from 0 to `drop_path` in the last block (timm's rule)
        rates = [drop_path * i / max(1, num_layers - 1) for i in range(num_layers)]
        self.layers = nn.ModuleList(
            AttentionResidual(dim, head_dim, mlp_dim, num_heads, dropout=dropout, attn_dropout=attn_dropout,
                              drop_path=rate, bias=bias, rotary=rotary, activation=activation, norm_eps=norm_eps,
                              native=native)
            for rate in rates
        )

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[Tensor, list[Tensor] | None]:
        if cache is not None and len(cache.layers) != len(self.layers):
            raise ValueError(f"cache has {len(cache.layers)} layers, the model has {len(self.layers)}")
        attentions: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            x, w = layer(x, attn_mask, is_causal=is_causal, need_weights=need_weights,
                         cache=None if cache is None else cache.layers[i])
            if w is not None:
                attentions.append(w)
        return x, (attentions if need_weights else None)


class SelfAttention(MultiHeadedAttention):
    """Classic multi-head self-attention where every head is as wide as the model: ``W_{q,k,v}``
    are widened to ``d x (h * d)`` and ``W_O`` maps ``h * d -> d``."""

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(dim, num_heads, dim, dropout=dropout, bias=bias)


class TransformerBlock(nn.Module):
    """The post-norm block of "Attention is all you need": ``x = norm1(x + attn(x))``, then
    ``x = norm2(x + mlp(x))``.

    ``forward(x, attn_mask=None, *, need_weights=False) -> (x, weights (B, H, T, T) or None)``.
    Every head is as wide as the model unless ``head_dim`` is given (BERT: ``dim // num_heads``);
    ``activation`` and ``norm_eps`` as in :class:`AttentionResidual` (BERT: ``norm_eps=1e-12``).
    """

    def __init__(self, *, dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.0,
                 attn_dropout: float = 0.0, head_dim: int | None = None, activation: str = "gelu",
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.attn = (SelfAttention(dim=dim, num_heads=num_heads, dropout=attn_dropout) if head_dim is None
                     else MultiHeadedAttention(dim, num_heads, head_dim, dropout=attn_dropout))
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = FFN(dim, mlp_dim, dropout=dropout, activation=activation)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        a, weights = self.attn(x, attn_mask, need_weights=need_weights)
        x = self.norm1(x + self.drop(a))
        x = self.norm2(x + self.mlp(x))
        return x, weights


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` (B, T, D) over the positions where ``mask`` (B, T) is True; zeros if none:
    the pooling of the classifiers that average their tokens."""
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
