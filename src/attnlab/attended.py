"""One attention interface for every model: ``model.attend(inputs) -> Attended``.

Every model with attention answers ``attend`` with the arguments of its ``forward``; ``forward``
returns the model's output alone (logits), ``attend`` returns that same output *and* what each
layer's heads attended to::

    Attended(output, attentions=[(B, H, T, S) per layer], lengths, grid, causal, extra)

``attentions[l][b, h, i, j]`` is the weight query ``i`` of head ``h`` in layer ``l`` gave key
``j``. Self-attention has ``S == T``; cross-attention (a decoder reading an encoder) has its own
``S``, and the shape holds it as it is. The weights come from the blocks' ``need_weights`` path,
which ``tests/test_layers.py`` pins equal to PyTorch's fused kernel, so the output of ``attend``
is the output of ``forward`` (tested per model in ``tests/models``).

The explorer, ``attnlab explain``, ``attnlab attention-map`` and the lab read attention only
through this method, so a new model gets every view by implementing it. What a person types
(a text, an image) becomes a model's inputs through its task's :class:`Reader`
(``attnlab.tasks.load_reader``): tokenization is the data's business, not the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

__all__ = ["Attended", "Encoded", "Reader", "ReaderKind"]

ReaderKind = Literal["lm", "classifier", "image", "translation"]


@dataclass
class Attended:
    """A model's output for a batch and the attention weights behind it."""

    output: Tensor  # what ``forward`` returns for the same inputs: logits
    attentions: list[Tensor]  # one (B, H, T, S) tensor per layer, first layer first
    lengths: Tensor | None = None  # (B,) real (unpadded) positions of each row; None: all T are real
    grid: tuple[int, int] | None = None  # images: the patch grid (rows, cols); key 0 is the class
    # token, keys 1.. the patches in row-major order
    causal: bool = False  # query i saw keys 0..i only (a language model)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else a view may want (e.g. features)

    @property
    def num_layers(self) -> int:
        return len(self.attentions)

    @property
    def num_heads(self) -> int:
        return int(self.attentions[0].shape[1]) if self.attentions else 0

    def length(self, row: int = 0) -> int:
        """Real query positions of batch row ``row``."""
        return int(self.lengths[row]) if self.lengths is not None else int(self.attentions[-1].shape[-2])

    def select(self, layers: list[int], heads: list[int], row: int = 0) -> Tensor:
        """(len(layers), len(heads), T, S) float32 weights of batch row ``row``."""
        return torch.stack([self.attentions[layer][row, heads] for layer in layers]).float()

    def received(self, row: int = 0, layer: int = -1) -> Tensor:
        """(n,) the attention each real token of row ``row`` receives in ``layer`` (default: the last):
        the heads averaged, then the mean of each key's column over the real queries. A classifier
        that averages its last layer's outputs takes this share of each token's value. Under
        cross-attention (S != T) every one of the S keys is kept: (S,)."""
        n = self.length(row)
        weights = self.attentions[layer][row].float().mean(0)  # (T, S): heads averaged
        keys = n if weights.size(0) == weights.size(1) else weights.size(1)
        return weights[:n, :keys].mean(0)  # (n,) or (S,)


@dataclass
class Encoded:
    """A person's input as a model's inputs: the arguments of ``attend`` and a label per position."""

    inputs: tuple[Tensor, ...]  # model.attend(*inputs)
    tokens: list[str]  # one label per position of batch row 0 (the words, or the token ids as text)
    notes: list[str] = field(default_factory=list)  # what was cut or changed on the way, for the user


class Reader(Protocol):
    """How a task's model reads what a person gives it; each task with attention provides one
    (its ``reader(model, meta)``). Only the methods of its ``kind`` are called:

    * ``lm`` (a language model): :meth:`text` (the prompt) and :meth:`token`;
    * ``classifier`` (a text classifier): :meth:`text`, and ``labels`` name the outputs;
    * ``image`` (a ViT): :meth:`images`, ``labels`` name the classes, ``image_size`` is the side;
    * ``translation`` (an encoder-decoder): :meth:`text` (the source) and :meth:`token` (a target piece).
    """

    kind: ReaderKind
    title: str  # what the model is, for a page's heading ("DialogueGPT language model")
    labels: list[str]  # names of a classifier's outputs, in order
    image_size: int  # an image model's input side (0 for text)

    def text(self, text: str, limit: int) -> Encoded:
        """``text`` as inputs of at most ``limit`` positions (notes say what was cut)."""
        ...

    def token(self, token_id: int) -> str:
        """A language model's token id as text."""
        ...

    def images(self, images: Tensor) -> tuple[Tensor, ...]:
        """uint8 images (B, 3, S, S) as the inputs of ``attend``."""
        ...
