"""The RNN baseline for translation: a GRU (or LSTM) encoder-decoder with Luong attention.

* The encoder is bidirectional: a forward RNN over the source and a second RNN over each
  sentence reversed *within its length* (so the padding at the end of a row never reaches the
  real tokens, without packing), their outputs concatenated and projected to ``hidden_size``:
  the memory (B, S, hidden).
* The decoder RNN starts from the mean of the memory over the real tokens and reads the target
  embeddings (teacher forcing); each of its states ``s_t`` then attends over the memory with
  Luong's "general" score ``s_t W_a m_j`` (scaled by ``1/sqrt(hidden)``, through
  :func:`attnlab.attention.scaled_dot_product_attention`, the one attention function), and
  ``tanh(W_c [c_t; s_t])`` goes to the output layer (tied to the target embedding when the sizes allow).
* Without input feeding, the decoder RNN runs over the whole target at once in training, as
  cuDNN/MKL run one ``nn.GRU`` call; decoding uses the same ``start`` / ``step`` / ``reorder``
  interface as the Transformer (:mod:`attnlab.models.decoding_seq2seq`), the RNN state being the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.attention import scaled_dot_product_attention
from attnlab.models.configs import Seq2SeqConfig

__all__ = ["RNNSeq2Seq", "RNNDecodeState", "reverse_within_lengths"]

HiddenState = Tensor | tuple[Tensor, Tensor]


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row of ``x`` (B, S, ...) over its first ``lengths[b]`` positions; the padding
    after them stays in place. Its own inverse."""
    S = x.size(1)
    pos = torch.arange(S, device=x.device)[None, :]  # (1, S)
    idx = torch.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)  # (B, S)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


@dataclass
class RNNDecodeState:
    memory: Tensor  # (N, S, hidden)
    keys: Tensor  # (N, S, hidden): the memory through W_a, computed once
    src_mask: Tensor  # (N, 1, S) True on real source tokens
    hidden: HiddenState  # the decoder RNN's state (layers, N, hidden) (LSTM: (h, c))


class RNNSeq2Seq(nn.Module):
    """GRU/LSTM encoder-decoder with Luong attention. ``forward(src (B, S), tgt (B, T)) -> logits (B, T, V)``."""

    def __init__(self, cfg: Seq2SeqConfig, src_vocab: int, tgt_vocab: int, *, pad_id: int = 0) -> None:
        super().__init__()
        if cfg.shared_embeddings and src_vocab != tgt_vocab:
            raise ValueError("shared embeddings need one vocabulary for both sides")
        self.cfg, self.pad_id = cfg, pad_id
        E, H, L = cfg.dim, cfg.hidden_size, cfg.encoder_layers
        rnn = nn.GRU if cfg.cell == "gru" else nn.LSTM
        self.src_embed = nn.Embedding(src_vocab, E)
        self.tgt_embed = self.src_embed if cfg.shared_embeddings else nn.Embedding(tgt_vocab, E)
        self.drop = nn.Dropout(cfg.dropout)
        drop_between = cfg.dropout if L > 1 else 0.0
        self.enc_fwd = rnn(E, H, L, batch_first=True, dropout=drop_between)
        self.enc_bwd = rnn(E, H, L, batch_first=True, dropout=drop_between)
        self.bridge = nn.Linear(2 * H, H)  # both directions -> the memory
        self.init = nn.Linear(H, L * H)  # mean memory -> the decoder's first state
        self.dec = rnn(E, H, L, batch_first=True, dropout=drop_between)
        self.W_a = nn.Linear(H, H, bias=False)  # Luong's general score
        self.W_c = nn.Linear(2 * H, E)  # [context; state] -> the output features
        self.out = nn.Linear(E, tgt_vocab, bias=False)
        if cfg.tie_output:
            self.out.weight = self.tgt_embed.weight

    def _embed(self, table: nn.Embedding, ids: Tensor) -> Tensor:
        x = table(ids)
        return self.drop(x) if self.training else x

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, HiddenState]:
        """``src`` (B, S) -> memory (B, S, hidden), mask (B, 1, S), the decoder's first state."""
        real = src != self.pad_id  # (B, S)
        lengths = real.sum(1)
        x = self._embed(self.src_embed, src)
        fwd, _ = self.enc_fwd(x)
        bwd, _ = self.enc_bwd(reverse_within_lengths(x, lengths))
        both = torch.cat([fwd, reverse_within_lengths(bwd, lengths)], -1)  # (B, S, 2H)
        memory = torch.tanh(self.bridge(both)) * real[..., None]  # padding rows zeroed
        mean = memory.sum(1) / lengths.clamp_min(1)[:, None]  # (B, H)
        h0 = torch.tanh(self.init(mean)).view(src.size(0), self.cfg.encoder_layers, -1).transpose(0, 1).contiguous()
        hidden: HiddenState = (h0, torch.zeros_like(h0)) if self.cfg.cell == "lstm" else h0
        return memory, real[:, None, :], hidden

    def _attend(self, states: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder states (B, T, H) over the memory -> logits (B, T, V), weights (B, T, S)."""
        context, weights = scaled_dot_product_attention(states, keys, memory, mask)  # (B, T, H), (B, T, S)
        feats = torch.tanh(self.W_c(torch.cat([context, states], -1)))  # (B, T, E)
        return self.out(self.drop(feats) if self.training else feats), weights

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        return self._run(src, tgt)[0]

    def _run(self, src: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
        memory, mask, hidden = self.encode(src)
        states, _ = self.dec(self._embed(self.tgt_embed, tgt), hidden)  # (B, T, H)
        return self._attend(states, self.W_a(memory), memory, mask)

    def attend(self, src: Tensor, tgt: Tensor) -> Attended:
        """``forward``'s logits and the attention weights as one single-head layer, (B, 1, T, S)."""
        logits, weights = self._run(src, tgt)
        return Attended(logits, [weights[:, None]], lengths=(tgt != self.pad_id).sum(1),
                        extra={"source_lengths": (src != self.pad_id).sum(1)})

    def start(self, src: Tensor, *, cache: bool = True) -> RNNDecodeState:
        """Encode ``src`` for decoding (the RNN's state is its cache: ``cache`` changes nothing)."""
        memory, mask, hidden = self.encode(src)
        return RNNDecodeState(memory, self.W_a(memory), mask, hidden)

    def step(self, state: RNNDecodeState, tokens: Tensor) -> Tensor:
        states, state.hidden = self.dec(self._embed(self.tgt_embed, tokens[:, None]), state.hidden)  # (N, 1, H)
        logits, _ = self._attend(states, state.keys, state.memory, state.src_mask)
        return logits[:, -1]

    def reorder(self, state: RNNDecodeState, index: Tensor) -> None:
        state.memory = state.memory.index_select(0, index)
        state.keys = state.keys.index_select(0, index)
        state.src_mask = state.src_mask.index_select(0, index)
        if isinstance(state.hidden, tuple):
            state.hidden = (state.hidden[0].index_select(1, index), state.hidden[1].index_select(1, index))
        else:
            state.hidden = state.hidden.index_select(1, index)
