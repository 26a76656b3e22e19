"""The toy task's classifier: a small Transformer encoder over padded token sequences.

``ToyClassifier`` = token embedding + learned positions -> :class:`attnlab.layers.Transformer`
under a padding mask -> LayerNorm -> mean over the real tokens (:func:`attnlab.layers.masked_mean`)
-> linear layer. It learns to
name the most frequent token of a sequence (:mod:`attnlab.data.toy`).
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.attention import padding_mask
from attnlab.layers import Transformer, masked_mean
from attnlab.models.configs import ToyModelConfig
from attnlab.positional import LearnedPositionalEmbedding
from attnlab.vocab import PAD_ID

__all__ = ["ToyModelConfig", "ToyClassifier"]


class ToyClassifier(nn.Module):
    """``forward(tokens (B, T)) -> logits (B, vocab_size)``; ``attend(tokens)`` adds every layer's weights."""

    def __init__(self, cfg: ToyModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size + 1, cfg.dim, padding_idx=PAD_ID)
        self.pos_embed = LearnedPositionalEmbedding(max_len=cfg.seq_len, dim=cfg.dim)
        self.encoder = Transformer(cfg.dim, cfg.head_dim, cfg.mlp_dim, cfg.num_heads, cfg.num_layers,
                                   dropout=cfg.dropout)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        return self._run(tokens, need_weights=False).output

    def attend(self, tokens: Tensor) -> Attended:
        """Logits and every layer's weights (B, H, T, T) under the padding mask."""
        return self._run(tokens, need_weights=True)

    def _run(self, tokens: Tensor, *, need_weights: bool) -> Attended:
        real = tokens != PAD_ID  # (B, T)
        x = self.pos_embed(self.embed(tokens))  # (B, T, D)
        x, attentions = self.encoder(x, padding_mask(real), need_weights=need_weights)
        logits = self.head(masked_mean(self.norm(x), real))  # (B, D) -> (B, classes)
        return Attended(logits, attentions or [], lengths=real.sum(1))
