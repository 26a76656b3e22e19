"""DialogueGPT's decoding step: one new position per row over a key/value cache, in few operations.

:class:`DecodeStep` computes exactly what ``model(ids, mask, cache=cache, positions=...)[:, -1]``
computes for one new token per row with oneDNN off, as the step runs (the same kernels on the same
numbers; tested equal bit for bit), but
without the modules: the block's sequence of operations is written out once here, on the
model's own weights, with no ``nn.Module`` calls, no mask building and no reshapes beyond the
head split. A cached step of the default GPT is about 60 small kernels of a few microseconds
each, so the calls around them cost as much as the kernels: at 256 words this step takes about
0.35 ms per word where the module forward takes 0.65 (2-vCPU Xeon, 2 threads).

One row (``B == 1``) goes through as a vector: each linear layer is ``addmv`` (matrix times
vector, no batch of one row to set up) and the output layer multiplies the weight itself by the
vector (no transposed copy); both give the same numbers as the batched kernels (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.layers import AttentionResidual, KVCache

if TYPE_CHECKING:
    from attnlab.models.gpt import DialogueGPT

__all__ = ["DecodeStep"]


def _bias(layer: nn.Linear) -> Tensor:
    return layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)


def _block(layer: AttentionResidual) -> tuple[Any, ...]:
    """One pre-norm block's weights and settings, in the order the step uses them (an absent
    bias as zeros, which add nothing)."""
    a, mlp = layer.attn, layer.mlp
    return (layer.norm1.weight, layer.norm1.bias, layer.norm1.eps, a.qkv.weight, _bias(a.qkv), a.W_O.weight,
            _bias(a.W_O), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps, mlp.fc1.weight, _bias(mlp.fc1),
            mlp.approximate, mlp.fc2.weight, _bias(mlp.fc2))


def _row_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.linear`` of one row ``x`` (in,) -> (out,)."""
    return torch.addmv(bias, weight, x)


class DecodeStep:
    """``step(ids (B, 1), cache, key_mask (B, T_k) | None, positions (B, 1) | None) -> logits (B, V)``.

    Built from an eval-mode :class:`attnlab.models.gpt.DialogueGPT` (a pre-norm stack with learned
    positions and no rotary embedding). ``key_mask`` (True = real token) covers every cached key
    and the new one; ``positions`` are the new tokens' positions in their own rows (left-padded
    batches), by default the cache's length. The weights are read when the step is built, so
    build a new one after training further. Call under ``torch.inference_mode()``.
    """

    def __init__(self, model: DialogueGPT) -> None:
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

    def __call__(self, ids: Tensor, cache: KVCache, key_mask: Tensor | None = None,
                 positions: Tensor | None = None) -> Tensor:
        # PyTorch's own CPU kernels instead of oneDNN's: oneDNN pays a fixed set-up per call (its
        # GELU of a 512-vector costs ten times PyTorch's), and this step is nothing but tiny ops.
        onednn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # a flag PyTorch lets us set
        try:
            return self._step(ids, cache, key_mask, positions)
        finally:
            torch.backends.mkldnn.enabled = onednn

    def _step(self, ids: Tensor, cache: KVCache, key_mask: Tensor | None, positions: Tensor | None) -> Tensor:
        B, offset = ids.size(0), cache.length
        if offset >= self.context:
            raise ValueError(f"the cache holds {offset} positions; the model's context is {self.context}")
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
