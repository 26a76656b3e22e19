"""A word-level LSTM language model: the baseline that DialogueGPT has to beat.

Same contract as :class:`attnlab.models.gpt.DialogueGPT` -- ``forward(input_ids, input_mask)``
returns (B, T, V) logits -- so it trains with the same tokenizer, split, vocabulary, loss
(:class:`attnlab.losses.DialogueLoss`) and sampling (:func:`attnlab.models.gpt.generate`,
uncached). Right padding needs no mask here: an LSTM reads left to right, so the pads after an
example never reach its real positions, and the loss skips pad targets.
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.configs import LSTMConfig
from attnlab.models.rnn_autocast import run_rnn

__all__ = ["LSTMConfig", "LSTMLanguageModel"]


class LSTMLanguageModel(nn.Module):
    """Embedding -> stacked LSTM -> (projection) -> output layer over the vocabulary."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        c = config
        if c.vocab_size <= 0:
            raise AttnlabError("LSTMConfig.vocab_size must be set (it comes from the tokenizer)")
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(c.dim, c.hidden, num_layers=c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        # Tying needs the output layer's input to be dim wide.
        self.proj = nn.Linear(c.hidden, c.dim) if c.tie_weights and c.hidden != c.dim else nn.Identity()
        out_in = c.dim if c.tie_weights else c.hidden
        self.head = nn.Linear(out_in, c.vocab_size)
        nn.init.normal_(self.embed.weight, std=0.02)
        if c.tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, input_ids: Tensor, input_mask: Tensor | None = None, *, cache: None = None,
                last_only: bool = False) -> Tensor:
        """Logits (B, T, V); with ``last_only`` only the last position's, (B, 1, V)."""
        x = self.drop(self.embed(input_ids))  # (B, T, dim)
        h, _ = run_rnn(self.lstm, x)  # (B, T, hidden); float32 on the CPU (see rnn_autocast)
        if last_only:
            h = h[:, -1:]  # (B, 1, hidden)
        return self.head(self.proj(self.drop(h)))  # (B, T, V)
