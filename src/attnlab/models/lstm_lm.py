"""A word-level LSTM language model: the baseline that DialogueGPT has to beat.

Same contract as :class:`attnlab.models.gpt.DialogueGPT` -- ``forward(input_ids, input_mask)``
returns (B, T, V) logits -- so it trains with the same tokenizer, split, vocabulary, loss
(:class:`attnlab.losses.DialogueLoss`) and sampling (:func:`attnlab.models.gpt.generate`,
uncached). Right padding needs no mask here: an LSTM reads left to right, so the pads after an
example never reach its real positions, and the loss skips pad targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from torch import Tensor, nn

from attnlab.config import Layers, NonNegative, Range, Rate, Size
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPTConfig
from attnlab.models.rnn_autocast import run_rnn

__all__ = ["LSTMConfig", "LSTMLanguageModel"]


@dataclass
class LSTMConfig:
    vocab_size: NonNegative = 0  # set from the tokenizer when training
    context: Annotated[int, Range(ge=2, le=2**20)] = GPTConfig.context  # training window (DialogueGPT's)
    # and generation window
    dim: Size = 256  # word embedding size
    hidden: Size = 512  # LSTM state size
    num_layers: Layers = 2  # stacked LSTM layers
    dropout: Rate = 0.3  # on embeddings, between layers and before the output layer
    tie_weights: bool = True  # output layer shares the embedding matrix (via a hidden -> dim projection)


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
