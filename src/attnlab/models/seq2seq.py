"""The encoder-decoder Transformer of "Attention is all you need", built from attnlab's pieces.

* The encoder is a :class:`attnlab.layers.Transformer` stack (pre-norm blocks) over the source
  pieces, with a padding mask on the keys and a final LayerNorm.
* Each :class:`DecoderBlock` runs masked (causal) self-attention, then :class:`CrossAttention`
  to the encoder's output (the *memory*), then the FFN, each as a pre-norm residual branch.
* Embeddings are scaled by ``sqrt(dim)`` and get the sinusoidal positions; source and target may
  share one table (``shared_embeddings``), and the output projection is the target table
  (``tie_output``).

Cross-attention projects the decoder's states to queries and the memory to keys and values,
then calls the same pure attention functions as every block (:mod:`attnlab.attention`): its
weights are ``(B, H, T_target, T_source)``. ``attend(src, tgt)`` returns them as the
:class:`attnlab.attended.Attended` attentions, with the encoder's and the decoder's
self-attention in ``extra``. Decoding (:mod:`attnlab.models.decoding_seq2seq`) goes through
``start`` / ``step`` / ``reorder``: the memory's keys and values are computed once per sentence
and the decoder's self-attention keys and values are cached (:class:`attnlab.layers.KVCache`).

Token id ``pad_id`` marks padding on both sides (sentences are right-padded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.attention import fused_attention, merge_heads, scaled_dot_product_attention, split_heads
from attnlab.layers import FFN, KVCache, LayerCache, MultiHeadedAttention, Transformer
from attnlab.models.configs import Seq2SeqConfig
from attnlab.positional import SinusoidalPositionalEncoding

__all__ = ["CrossAttention", "DecoderBlock", "Seq2SeqTransformer", "TransformerDecodeState"]


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` (B, T, dim) over a memory (B, S, dim).

    ``W_Q`` projects the queries; ``kv`` projects the memory to keys and values of all heads at
    once (``[W_K | W_V]``, as :class:`attnlab.layers.MultiHeadedAttention` packs ``qkv``);
    ``W_O`` maps the concatenated heads back to ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, *, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.W_Q = nn.Linear(dim, inner, bias=bias)
        self.kv = nn.Linear(dim, 2 * inner, bias=bias)
        self.W_O = nn.Linear(inner, dim, bias=bias)
        self.dropout = dropout

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of the memory (B, S, dim) -> two (B, H, S, hd) tensors (computed once
        per sentence when decoding)."""
        k, v = split_heads(self.kv(memory), 2, self.num_heads)  # each (B, H, S, hd)
        return k, v

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], attn_mask: Tensor | None = None, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, T, dim), ``kv`` from :meth:`memory_kv`, ``attn_mask`` (B, 1, 1, S) True on real
        source tokens -> ``(out (B, T, dim), weights (B, H, T, S) or None)``."""
        (q,) = split_heads(self.W_Q(x), 1, self.num_heads)  # (B, H, T, hd)
        k, v = kv
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, attn_mask, p)
        else:
            out, weights = fused_attention(q, k, v, attn_mask, p), None
        out = merge_heads(out)  # (B, T, H*hd)
        return self.W_O(out), weights


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: ``x += self_attn(norm1(x))`` (causal), ``x += cross_attn(norm2(x),
    memory)``, ``x += mlp(norm3(x))``."""

    def __init__(self, dim: int, head_dim: int, mlp_dim: int, num_heads: int, *, dropout: float = 0.0,
                 attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiHeadedAttention(dim, num_heads, head_dim, dropout=attn_dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads, head_dim, dropout=attn_dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = FFN(dim, mlp_dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], src_mask: Tensor | None, *,
                cache: LayerCache | None = None, need_weights: bool = False
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``x`` (B, T, dim) -> ``(x, self-attention (B, H, T, T_k), cross-attention (B, H, T, S))``
        (the weights None unless ``need_weights``). With ``cache``, ``x`` holds the new positions only."""
        a, self_w = self.self_attn(self.norm1(x), is_causal=True, need_weights=need_weights, cache=cache)
        x = x + (self.drop(a) if self.training else a)
        c, cross_w = self.cross_attn(self.norm2(x), kv, src_mask, need_weights=need_weights)
        x = x + (self.drop(c) if self.training else c)
        x = x + self.mlp(self.norm3(x))
        return x, self_w, cross_w


@dataclass
class TransformerDecodeState:
    """What decoding carries from step to step, one row per hypothesis."""

    kv: list[tuple[Tensor, Tensor]]  # each decoder layer's memory keys and values, (N, H, S, hd)
    src_mask: Tensor  # (N, 1, 1, S) True on real source tokens
    prefix: Tensor  # (N, t) the target tokens fed so far (the uncached path re-reads them)
    cache: KVCache | None  # the decoder self-attention's keys and values (None: recompute every step)


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer. ``forward(src (B, S), tgt (B, T)) -> logits (B, T, V_tgt)``:
    the logits at target position ``i`` predict token ``i + 1`` (teacher forcing)."""

    def __init__(self, cfg: Seq2SeqConfig, src_vocab: int, tgt_vocab: int, *, pad_id: int = 0) -> None:
        super().__init__()
        if cfg.shared_embeddings and src_vocab != tgt_vocab:
            raise ValueError("shared embeddings need one vocabulary for both sides")
        self.cfg, self.pad_id = cfg, pad_id
        dim, heads = cfg.dim, cfg.num_heads
        head_dim = dim // heads
        self.src_embed = nn.Embedding(src_vocab, dim)
        self.tgt_embed = self.src_embed if cfg.shared_embeddings else nn.Embedding(tgt_vocab, dim)
        self.scale = math.sqrt(dim)
        self.pos = SinusoidalPositionalEncoding(dim=dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Transformer(dim, head_dim, cfg.mlp_dim, heads, cfg.encoder_layers, dropout=cfg.dropout,
                                   attn_dropout=cfg.attn_dropout)
        self.enc_norm = nn.LayerNorm(dim)
        self.decoder = nn.ModuleList(
            DecoderBlock(dim, head_dim, cfg.mlp_dim, heads, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout)
            for _ in range(cfg.decoder_layers))
        self.dec_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, tgt_vocab, bias=False)
        for table in {self.src_embed, self.tgt_embed}:  # unit-variance inputs after the sqrt(dim) scale
            nn.init.normal_(table.weight, std=dim ** -0.5)
        if cfg.tie_output:
            self.out.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------ pieces
    def _embed(self, table: nn.Embedding, ids: Tensor, offset: int = 0) -> Tensor:
        x = self.pos(table(ids) * self.scale, offset=offset)  # (B, T, dim)
        return self.drop(x) if self.training else x

    def source_mask(self, src: Tensor) -> Tensor:
        """(B, 1, 1, S) True on the real source tokens (broadcasts over heads and queries)."""
        return (src != self.pad_id)[:, None, None, :]

    def encode(self, src: Tensor, *, need_weights: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """``src`` (B, S) -> memory (B, S, dim) and, with ``need_weights``, each encoder layer's
        (B, H, S, S) self-attention."""
        x, attentions = self.encoder(self._embed(self.src_embed, src), self.source_mask(src),
                                     need_weights=need_weights)
        return self.enc_norm(x), attentions

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        return [cast(DecoderBlock, block).cross_attn.memory_kv(memory) for block in self.decoder]

    def decode(self, tgt: Tensor, kv: list[tuple[Tensor, Tensor]], src_mask: Tensor, *,
               cache: KVCache | None = None, need_weights: bool = False
               ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Target ids (B, T) (with ``cache``: the new ones only) -> logits (B, T, V), the decoder
        self-attentions and cross-attentions per layer (empty lists unless ``need_weights``)."""
        offset = cache.length if cache is not None else 0
        x = self._embed(self.tgt_embed, tgt, offset)
        selfs: list[Tensor] = []
        crosses: list[Tensor] = []
        for i, block in enumerate(self.decoder):
            x, s, c = block(x, kv[i], src_mask, cache=None if cache is None else cache.layers[i],
                            need_weights=need_weights)
            if s is not None and c is not None:
                selfs.append(s)
                crosses.append(c)
        return self.out(self.dec_norm(x)), selfs, crosses

    # ------------------------------------------------------------------ the model's interfaces
    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        memory, _ = self.encode(src)
        logits, _, _ = self.decode(tgt, self.memory_kv(memory), self.source_mask(src))
        return logits

    def attend(self, src: Tensor, tgt: Tensor) -> Attended:
        """``forward``'s logits with the decoder's cross-attention as ``attentions`` (one
        (B, H, T, S) tensor per decoder layer); ``extra`` holds ``encoder`` and ``decoder``
        (the self-attentions, (B, H, S, S) and (B, H, T, T) per layer), ``source_lengths``."""
        memory, enc = self.encode(src, need_weights=True)
        logits, selfs, crosses = self.decode(tgt, self.memory_kv(memory), self.source_mask(src), need_weights=True)
        return Attended(logits, crosses, lengths=(tgt != self.pad_id).sum(1), causal=False,
                        extra={"encoder": enc or [], "decoder": selfs, "source_lengths": (src != self.pad_id).sum(1)})

    def start(self, src: Tensor, *, cache: bool = True) -> TransformerDecodeState:
        """Encode ``src`` (N, S) for decoding: the memory's keys and values, once."""
        memory, _ = self.encode(src)
        return TransformerDecodeState(self.memory_kv(memory), self.source_mask(src),
                                      src.new_zeros(src.size(0), 0), KVCache(len(self.decoder)) if cache else None)

    def step(self, state: TransformerDecodeState, tokens: Tensor) -> Tensor:
        """Feed one target token per row (N,) and return the next-token logits (N, V)."""
        state.prefix = torch.cat([state.prefix, tokens[:, None]], 1)  # (N, t)
        if state.cache is not None:
            logits, _, _ = self.decode(tokens[:, None], state.kv, state.src_mask, cache=state.cache)
        else:
            logits, _, _ = self.decode(state.prefix, state.kv, state.src_mask)
        return logits[:, -1]

    def reorder(self, state: TransformerDecodeState, index: Tensor) -> None:
        """Keep rows ``index`` of the state (in that order): beams that survive a step."""
        state.kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in state.kv]
        state.src_mask = state.src_mask.index_select(0, index)
        state.prefix = state.prefix.index_select(0, index)
        if state.cache is not None:
            for layer in state.cache.layers:
                reorder_layer_cache(layer, index)


def reorder_layer_cache(layer: LayerCache, index: Tensor) -> None:
    """Select rows ``index`` of a :class:`LayerCache`'s storage (batch dimension 0) in place."""
    if layer._k is not None and layer._v is not None:
        layer._k = layer._k.index_select(0, index)
        layer._v = layer._v.index_select(0, index)
