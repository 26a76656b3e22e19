"""DialogueGPT's decoding step: one new position per row over a key/value cache, in few operations.

:class:`DecodeStep` computes exactly what ``model(ids, mask, cache=cache, positions=...)[:, -1]``
computes for one new token per row with oneDNN off, as the step runs (the same kernels on the same
numbers; tested equal bit for bit), but without the modules: the block's sequence of operations is
written out once here, on the model's own weights, with no ``nn.Module`` calls, no mask building
and no reshapes beyond the head split. A cached step of the default GPT is about 90 calls into
PyTorch, each a small kernel of a few microseconds, so the calls around them cost as much as the
kernels: at 256 words this step takes 0.39 ms per word where the module forward took 0.66
(``attnlab bench generate``, 2-vCPU Xeon, 2 threads).

One row (``B == 1``) goes through as a vector: each linear layer is ``addmv`` (matrix times
vector, no batch of one row to set up) and the output layer multiplies the weight itself by the
vector (no transposed copy), as the module forward does for one row: the same numbers (tested).

That one-row path also exists in C++ (``gpt_step.cpp``: the same ATen calls in the same order, so
the same numbers, without Python between them; 0.31-0.32 ms per word in ``attnlab bench
generate``). It is built on first use by ``torch.utils.cpp_extension`` (about 20 s, said on
stderr, then cached; :mod:`attnlab.models.gpt_step_build`), which needs a C++ compiler and
``ninja`` (``pip install ninja``).
``ATTNLAB_DECODE`` chooses: ``auto`` (the default) uses C++ where this machine has what the build
takes and Python elsewhere, ``python`` never builds, and ``cpp`` is an error where it cannot build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.layers import AttentionResidual, KVCache
from attnlab.models.configs import DECODE_ENV, decode_backend
from attnlab.models.gpt_step_build import native_for

if TYPE_CHECKING:
    from attnlab.models.gpt import DialogueGPT

__all__ = ["DecodeStep", "DECODE_ENV", "decode_backend"]


def _bias(layer: nn.Linear) -> Tensor:
    return layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)


def _block(layer: AttentionResidual) -> tuple[Any, ...]:
    """One pre-norm block's weights and settings, in the order the step uses them (an absent
    bias as zeros, which add nothing)."""
    a, mlp = layer.attn, layer.mlp
    return (layer.norm1.weight, layer.norm1.bias, layer.norm1.eps, a.qkv.weight, _bias(a.qkv), a.W_O.weight,
            _bias(a.W_O), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps, mlp.fc1.weight, _bias(mlp.fc1),
            mlp.approximate, mlp.fc2.weight, _bias(mlp.fc2))


def _or_default(t: Tensor | None, value: float, like: Tensor) -> Tensor:
    """A LayerNorm's weight or bias, or the constant that stands for an absent one (1 or 0), with
    the dtype and device of ``like`` and its last dimension's size."""
    return like.new_full((like.size(-1),), value) if t is None else t


def _native_weights(block: tuple[Any, ...]) -> list[Tensor]:
    """A block's 12 tensors for the C++ step (``_block``'s order without the settings; absent
    LayerNorm weights and biases as ones and zeros, which change nothing)."""
    n1w, n1b, _, qkv_w, qkv_b, out_w, out_b, n2w, n2b, _, fc1_w, fc1_b, _, fc2_w, fc2_b = block
    return [_or_default(n1w, 1.0, qkv_w), _or_default(n1b, 0.0, qkv_w), qkv_w, qkv_b, out_w, out_b,
            _or_default(n2w, 1.0, qkv_w), _or_default(n2b, 0.0, qkv_w), fc1_w, fc1_b, fc2_w, fc2_b]


def _row_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.linear`` of one row ``x`` (in,) -> (out,)."""
    return torch.addmv(bias, weight, x)


class DecodeStep:
    """``step(ids (B, 1), cache, key_mask (B, T_k) | None, positions (B, 1) | None) -> logits (B, V)``.

    Built from an eval-mode :class:`attnlab.models.gpt.DialogueGPT` (a pre-norm stack with learned
    positions and no rotary embedding). ``key_mask`` (True = real token) covers every cached key
    and the new one; ``positions`` are the new tokens' positions in their own rows (left-padded
    batches), by default the cache's length. It holds the model's own parameters (no copies).
    Call under ``torch.inference_mode()``. ``backend`` (default: ``ATTNLAB_DECODE``, else
    ``auto``) picks the one-row path's implementation (``backend`` then says which runs it: ``cpp``
    or ``python``); batches always run in Python.
    """

    def __init__(self, model: DialogueGPT, *, backend: str | None = None) -> None:
        c = model.config
        layers = cast("list[AttentionResidual]", list(model.transformer.layers))
        if any(layer.attn.rotary is not None for layer in layers):
            raise ValueError("DecodeStep supports learned positions only, not rotary embeddings")
        self.heads, self.head_dim = c.num_heads, c.dim // c.num_heads
        self.dim, self.context = c.dim, c.context
        self.blocks = [_block(layer) for layer in layers]
        self.tok, self.pos = model.tok.weight, model.pos.weight
        self.norm_w, self.norm_b, self.norm_eps = model.norm.weight, model.norm.bias, model.norm.eps
        self.head = model.head.weight  # (V, dim)
        self._head_t = model._head_weight_t  # () -> (dim, V), for batches
        choice = decode_backend() if backend is None else decode_backend({DECODE_ENV: backend})
        native = native_for(choice)
        self._native: Any = None  # the C++ step, holding the model's tensors
        if native is not None:
            self._native = native.Step(
                self.tok, self.pos, _or_default(self.norm_w, 1.0, self.tok), _or_default(self.norm_b, 0.0, self.tok),
                self.head, [t for b in self.blocks for t in _native_weights(b)],
                [eps for b in self.blocks for eps in (b[2], b[9])], [b[12] for b in self.blocks], self.norm_eps,
                self.heads)

    def __call__(self, ids: Tensor, cache: KVCache, key_mask: Tensor | None = None,
                 positions: Tensor | None = None) -> Tensor:
        if self._native is not None and ids.size(0) == 1 and key_mask is None and positions is None:
            return self._native_step(int(ids), cache)
        # PyTorch's own CPU kernels instead of oneDNN's: oneDNN pays a fixed set-up per call (its
        # GELU of a 512-vector costs ten times PyTorch's), and this step is nothing but tiny ops.
        onednn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # a flag PyTorch lets us set
        try:
            return self._step(ids, cache, key_mask, positions)
        finally:
            torch.backends.mkldnn.enabled = onednn

    def _step(self, ids: Tensor, cache: KVCache, key_mask: Tensor | None, positions: Tensor | None) -> Tensor:
        B, offset = ids.size(0), self._offset(cache)
        one = B == 1 and key_mask is None and positions is None
        H, hd, D = self.heads, self.head_dim, self.dim
        if one:  # one row, as a vector
            x = self.tok[int(ids)] + self.pos[offset]  # (D,)
            linear: Callable[[Tensor, Tensor, Tensor], Tensor] = _row_linear
        else:
            pos = self.pos[offset] if positions is None else self.pos[positions.view(-1)]  # (D,) or (B, D)
            x = F.embedding(ids.view(-1), self.tok) + pos  # (B, D)
            linear = torch._C._nn.linear
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T_k)
        shape, heads, flat = (D,), (B, 3, H, 1, hd), x.shape
        sdpa, layer_norm, gelu = F.scaled_dot_product_attention, torch.layer_norm, F.gelu
        for (n1w, n1b, eps1, qkv_w, qkv_b, out_w, out_b, n2w, n2b, eps2, fc1_w, fc1_b, approximate, fc2_w,
             fc2_b), layer_cache in zip(self.blocks, cache.layers):
            q, k, v = linear(layer_norm(x, shape, n1w, n1b, eps1), qkv_w, qkv_b).view(heads).unbind(1)  # (B, H, 1, hd)
            k, v = layer_cache.append(k, v)  # (B, H, T_k, hd) each
            a = sdpa(q, k, v, attn_mask=mask)  # (B, H, 1, hd)
            x = x + linear(a.view(flat), out_w, out_b)  # heads concatenated: (B, H*hd), or (H*hd,) for one row
            h = layer_norm(x, shape, n2w, n2b, eps2)
            x = x + linear(gelu(linear(h, fc1_w, fc1_b), approximate=approximate), fc2_w, fc2_b)
        h = torch.layer_norm(x, shape, self.norm_w, self.norm_b, self.norm_eps)
        if one:
            return torch.mv(self.head, h).view(1, -1)  # (1, V)
        return h @ self._head_t()  # (B, V)

    def _offset(self, cache: KVCache) -> int:
        """The new position: the cache's length, which must leave room in the model's context."""
        if cache.length >= self.context:
            raise ValueError(f"the cache holds {cache.length} positions; the model's context is {self.context}")
        return cache.length

    @property
    def backend(self) -> str:
        """What runs the one-row path: ``cpp`` or ``python``."""
        return "python" if self._native is None else "cpp"

    def pick(self, token: int, cache: KVCache, banned: Tensor) -> tuple[int, float]:
        """One row's next step and greedy pick in one C++ call (``backend == "cpp"`` only), where
        ``token`` is the row's last id: the most likely id not in ``banned`` and its logit (NaN
        where any logit is NaN), as ``generate`` picks from this step's logits in Python. The
        call runs in its own inference mode."""
        if self._native is None:
            raise ValueError("pick runs the C++ step; this DecodeStep decodes in Python (backend 'python')")
        picked, top = self._native.pick(token, *self._native_args(cache), banned)
        _advance(cache)
        return picked, top

    def _native_step(self, token: int, cache: KVCache) -> Tensor:
        """The one-row path in C++ (``gpt_step.cpp``, oneDNN off there too): it writes the new
        position into the cache's buffers itself, and the cache is then told it holds one more."""
        logits = self._native(token, *self._native_args(cache))  # (V,)
        _advance(cache)
        return logits.view(1, -1)  # (1, V)

    def _native_args(self, cache: KVCache) -> tuple[int, list[Tensor], list[Tensor]]:
        """The new position and every block's key and value buffers, which the C++ step writes it into."""
        offset = self._offset(cache)
        buffers = [layer.buffers(1) for layer in cache.layers]
        return offset, [k for k, _ in buffers], [v for _, v in buffers]


def _advance(cache: KVCache) -> None:
    """Tell every block's cache that it holds the position the C++ step wrote."""
    for layer in cache.layers:
        layer.length += 1
