"""Sentiment classifiers over token ids, from averaged word vectors to Transformers and RNNs.

Every model has the same interface: ``forward(ids, lengths) -> logits`` with ``ids`` (B, T)
token ids (0 = padding, 1 = unknown word) and ``lengths`` (B,) the number of real tokens;
``logits`` is (B, num_classes). Columns past ``lengths.max()`` are cut off first, so extra
padding never changes a prediction. Models with attention also answer ``attend(ids, lengths)``
(:class:`attnlab.attended.Attended`: the logits and every layer's weights (B, H, T, T)), which
``attnlab explain`` and the explorer draw.

* :class:`LogisticRegressionClassifier`, :class:`FFNN`: the average of the review's known word
  vectors (unknown words and padding skipped; a review with no known word averages to the zero
  vector) -> a linear layer / one tanh hidden layer.
* :class:`AttentionClassifier`: frozen pretrained embeddings -> :class:`Attention` (the course's
  name for one :class:`attnlab.layers.AttentionHead` whose values keep the embedding width)
  -> mean over the real tokens -> linear layer.
* :class:`TextClassificationTransformer`: trainable embeddings + learned positions + post-norm
  :class:`attnlab.layers.TransformerBlock` s + pooling + head.
* :class:`TextClassificationRNN`: embeddings + (bi)LSTM/GRU that never reads padding (packed
  sequences, or an equal and faster length-aware padded path) + head.
* ``bert``: :class:`attnlab.models.bert.BertClassifier` (BERT / DistilBERT from pretrained weights),
  which also takes ``token_type_ids``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.attended import Attended
from attnlab.attention import padding_mask
from attnlab.layers import AttentionHead, TransformerBlock, masked_mean
from attnlab.models.configs import MODELS, NEEDS_VECTORS, POOLING, TextModelConfig, TextModelName
from attnlab.models.rnn_autocast import run_rnn
from attnlab.positional import LearnedPositionalEmbedding
from attnlab.vocab import PAD_ID, UNK_ID

__all__ = [
    "TextModelConfig", "TextModelName", "MODELS", "NEEDS_VECTORS", "POOLING", "build_text_classifier",
    "token_mask", "masked_mean", "AveragedVectors", "LogisticRegressionClassifier", "FFNN", "Attention",
    "AttentionClassifier", "TextClassificationTransformer", "TextClassificationRNN", "reverse_within_length",
    "predict_logits",
]


def build_text_classifier(m: TextModelConfig, vocab_size: int, vectors: Tensor | None, *,
                          emb_dim: int | None = None, num_classes: int = 2) -> nn.Module:
    """The classifier named by ``m.name``. ``vectors`` (V, e) are the pretrained word vectors; the
    averaging and attention models need them (``None`` with ``emb_dim`` builds an empty table
    to load a checkpoint into), the Transformer and the RNN start their first columns there."""
    if m.name in NEEDS_VECTORS:
        table = vectors if vectors is not None else torch.zeros(vocab_size, emb_dim or 50)
        if m.name == "logreg":
            return LogisticRegressionClassifier(embeddings=table, num_classes=num_classes)
        if m.name == "ffnn":
            return FFNN(embeddings=table, hidden_size=m.hidden_size, num_classes=num_classes)
        return AttentionClassifier(embeddings=table, query_key_size=m.query_key_size, num_classes=num_classes)
    m.check()
    pooling = m.pooling or POOLING[m.name][0]
    if m.name == "bert":
        from attnlab.models.bert import build_bert

        return build_bert(m, vocab_size, num_classes=num_classes)
    if m.name == "transformer":
        return TextClassificationTransformer(
            vocab_size=vocab_size, max_len=m.max_len, dim=m.dim, num_heads=m.num_heads,
            mlp_dim=m.mlp_dim, num_layers=m.num_layers, dropout=m.dropout, pooling=pooling,
            num_classes=num_classes, pretrained=vectors, activation=m.activation,
            norm_eps=m.norm_eps if m.norm_eps is not None else 1e-5)
    return TextClassificationRNN(
        vocab_size=vocab_size, dim=m.dim, hidden_size=m.hidden_size, num_layers=m.num_layers,
        cell=m.cell, bidirectional=m.bidirectional, dropout=m.dropout, pooling=pooling,
        num_classes=num_classes, packed=m.packed, pretrained=vectors)


def _trim(ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the columns that are padding in every row; returns (ids, mask) with mask (B, T) bool."""
    t = max(1, int(lengths.max()))
    ids = ids[:, :t]  # (B, T)
    return ids, token_mask(lengths, t)


def token_mask(lengths: Tensor, t: int) -> Tensor:
    """(B, t) bool: True for the first ``lengths[b]`` positions of row ``b``."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def _frozen(embeddings: Tensor) -> nn.Embedding:
    return nn.Embedding.from_pretrained(embeddings.float(), freeze=True, padding_idx=PAD_ID)


def _trainable(vocab_size: int, dim: int, pretrained: Tensor | None) -> nn.Embedding:
    """A trainable table; with ``pretrained`` (V, e) its first ``min(e, dim)`` columns start there."""
    emb = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    nn.init.normal_(emb.weight, std=0.1)
    if pretrained is not None:
        assert pretrained.size(0) == vocab_size, (
            f"pretrained vectors have {pretrained.size(0)} rows, the vocabulary {vocab_size}")
        e = min(dim, pretrained.size(1))
        with torch.no_grad():
            # Scale the vectors to the table's typical norm so neither part dominates.
            src = pretrained[:, :e].float()
            scale = 0.1 / src[2:].std().clamp_min(1e-6)
            emb.weight[:, :e] = src * scale
    with torch.no_grad():
        emb.weight[PAD_ID].zero_()
    return emb


class AveragedVectors(nn.Module):
    """Shared front end: the mean of the known word vectors of each review; subclasses
    classify that mean (:meth:`classify`)."""

    def __init__(self, embeddings: Tensor) -> None:
        super().__init__()
        self.embedding = _frozen(embeddings)

    def average(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """(B, D) mean of the known word vectors. The vectors are frozen, so a task may compute
        this once per review and train :meth:`classify` on it (what ``attnlab train`` does)."""
        ids, mask = _trim(ids, lengths)
        known = mask & (ids > UNK_ID)  # unknown words and padding are skipped
        return masked_mean(self.embedding(ids), known)  # (B, D)

    def forward(self, ids: Tensor | None = None, lengths: Tensor | None = None, *,
                features: Tensor | None = None) -> Tensor:
        """Logits from ``ids`` and ``lengths``, or from already averaged ``features`` (B, D)."""
        if features is None:
            assert ids is not None and lengths is not None, "pass ids and lengths, or features"
            features = self.average(ids, lengths)
        return self.classify(features)

    def classify(self, features: Tensor) -> Tensor:
        raise NotImplementedError


class LogisticRegressionClassifier(AveragedVectors):
    """Logistic regression (softmax over ``num_classes``) on the averaged word vectors."""

    def __init__(self, *, embeddings: Tensor, num_classes: int = 2) -> None:
        super().__init__(embeddings)
        self.linear = nn.Linear(embeddings.size(1), num_classes)

    def classify(self, features: Tensor) -> Tensor:
        return self.linear(features)


class FFNN(AveragedVectors):
    """One hidden layer (``hidden_size`` tanh units) on the averaged word vectors."""

    def __init__(self, *, embeddings: Tensor, hidden_size: int = 20, num_classes: int = 2) -> None:
        super().__init__(embeddings)
        self.hidden = nn.Linear(embeddings.size(1), hidden_size)
        self.out = nn.Linear(hidden_size, num_classes)

    def classify(self, features: Tensor) -> Tensor:
        return self.out(torch.tanh(self.hidden(features)))


class Attention(AttentionHead):
    """The course's single-head self-attention, ``softmax(Q K^T / sqrt(d_k)) V``: an
    :class:`attnlab.layers.AttentionHead` with ``W_Q, W_K``: e -> d_k (``query_key_size``) and
    ``W_V``: e -> e, all without bias.

    ``forward(x (B, T, e), attn_mask) -> (out (B, T, e), A (B, T, T))``.
    """

    def __init__(self, input_embedding_size: int, query_key_size: int) -> None:
        super().__init__(input_embedding_size, query_key_size, value_dim=input_embedding_size)


class AttentionClassifier(nn.Module):
    """Frozen pretrained embeddings -> :class:`Attention` -> mean over real tokens -> linear."""

    def __init__(self, *, embeddings: Tensor, query_key_size: int = 32, num_classes: int = 2) -> None:
        super().__init__()
        self.embedding = _frozen(embeddings)
        e = embeddings.size(1)
        self.attention = Attention(e, query_key_size)
        self.linear = nn.Linear(e, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.attend(ids, lengths).output

    def attend(self, ids: Tensor, lengths: Tensor) -> Attended:
        """Logits and the single head's weights as a one-layer, one-head stack: [(B, 1, T, T)]."""
        ids, mask = _trim(ids, lengths)
        attn_mask = padding_mask(mask)[:, 0]  # (B, 1, T): no query looks at padding
        out, weights = self.attention(self.embedding(ids), attn_mask)  # (B, T, e), (B, T, T)
        logits = self.linear(masked_mean(out, mask))
        return Attended(logits, [weights[:, None]], lengths=mask.sum(1))  # (B, 1, T, T)


class TextClassificationTransformer(nn.Module):
    """Embeddings + learned positions -> ``num_layers`` post-norm blocks -> pooling -> head.

    ``pooling``: ``mean`` over real tokens, ``max`` over real tokens, or ``meanmax`` (both,
    concatenated). ``pretrained`` (V, e) initialises the first ``e`` embedding columns.
    ``activation`` (``gelu`` | ``gelu_tanh``) and ``norm_eps`` go to the blocks.
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 64, num_heads: int = 2,
                 mlp_dim: int = 128, num_layers: int = 1, dropout: float = 0.1,
                 pooling: str = "mean", num_classes: int = 2, pretrained: Tensor | None = None,
                 activation: str = "gelu", norm_eps: float = 1e-5) -> None:
        super().__init__()
        assert pooling in ("mean", "max", "meanmax"), f"unknown pooling {pooling!r}"
        self.embedding = _trainable(vocab_size, dim, pretrained)
        self.positions = LearnedPositionalEmbedding(max_len=max_len, dim=dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim=dim, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout, attn_dropout=dropout,
                             activation=activation, norm_eps=norm_eps)
            for _ in range(num_layers)
        )
        self.pooling = pooling
        self.head = nn.Linear(dim * (2 if pooling == "meanmax" else 1), num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self._run(ids, lengths, need_weights=False).output

    def attend(self, ids: Tensor, lengths: Tensor) -> Attended:
        """Logits and every block's weights, [(B, H, T, T)] per block."""
        return self._run(ids, lengths, need_weights=True)

    def _run(self, ids: Tensor, lengths: Tensor, *, need_weights: bool) -> Attended:
        ids, mask = _trim(ids, lengths)
        x = self.drop(self.positions(self.embedding(ids)))  # (B, T, dim)
        attn_mask = padding_mask(mask)  # (B, 1, 1, T)
        weights: list[Tensor] = []
        for block in self.blocks:
            x, w = block(x, attn_mask, need_weights=need_weights)
            if w is not None:
                weights.append(w)  # (B, H, T, T)
        return Attended(self.head(self.drop(self.pool(x, mask))), weights, lengths=mask.sum(1))

    def pool(self, x: Tensor, mask: Tensor) -> Tensor:
        """The pooling of ``forward``: (B, T, dim) over the real tokens -> (B, dim) or (B, 2 * dim)."""
        pooled = []
        if self.pooling in ("mean", "meanmax"):
            pooled.append(masked_mean(x, mask))
        if self.pooling in ("max", "meanmax"):
            pooled.append(x.masked_fill(~mask[..., None], torch.finfo(x.dtype).min).amax(1))
        return torch.cat(pooled, dim=-1)


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first ``lengths[b]`` steps of each row of ``x`` (B, T, ...); padding stays last."""
    t = torch.arange(x.size(1), device=x.device)[None, :]  # (1, T)
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


class TextClassificationRNN(nn.Module):
    """Embeddings -> (bi)LSTM or GRU -> pooling -> head; padding is never read.

    Each direction of each layer is a one-directional ``nn.LSTM``/``nn.GRU``. With
    ``packed=True`` every direction runs over a ``PackedSequence`` (``pack_padded_sequence``):
    the textbook way to skip padding. ``packed=False`` gives the same numbers faster on a CPU:
    the forward direction runs over the padded batch (an RNN is causal, so the padding after a
    review cannot reach its real steps) and the backward direction over each review reversed
    *within its length* (padding still last); this uses PyTorch's fused CPU kernels, which
    packed input cannot (packed is many times slower per step). ``tests/models/test_text.py``
    checks that both give the same logits.

    ``pooling``: ``last`` (the final state of each direction) or ``max`` over the real steps.
    """

    def __init__(self, *, vocab_size: int, dim: int = 64, hidden_size: int = 64,
                 num_layers: int = 1, cell: str = "lstm", bidirectional: bool = True,
                 dropout: float = 0.2, pooling: str = "max", num_classes: int = 2,
                 packed: bool = False, pretrained: Tensor | None = None) -> None:
        super().__init__()
        assert cell in ("lstm", "gru"), f"unknown cell {cell!r}"
        assert pooling in ("last", "max"), f"unknown pooling {pooling!r}"
        self.embedding = _trainable(vocab_size, dim, pretrained)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        dirs = 2 if bidirectional else 1
        self.fwd = nn.ModuleList(rnn(dim if i == 0 else dirs * hidden_size, hidden_size, batch_first=True)
                                 for i in range(num_layers))
        self.bwd = nn.ModuleList(rnn(dim if i == 0 else dirs * hidden_size, hidden_size, batch_first=True)
                                 for i in range(num_layers)) if bidirectional else None
        self.pooling, self.packed = pooling, packed
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * dirs, num_classes)

    def _direction(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> Tensor:
        if not self.packed:
            return run_rnn(rnn, x)[0]  # (B, T, H); steps past a row's length are junk, never read
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(run_rnn(rnn, packed)[0], batch_first=True, total_length=x.size(1))[0]

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        ids, mask = _trim(ids, lengths)
        lengths = lengths.clamp_min(1)
        x = self.drop(self.embedding(ids))  # (B, T, dim)
        for i in range(len(self.fwd)):
            if i > 0:
                x = self.drop(x)
            outs = [self._direction(cast(nn.RNNBase, self.fwd[i]), x, lengths)]  # (B, T, H)
            if self.bwd is not None:
                rev = self._direction(cast(nn.RNNBase, self.bwd[i]), reverse_within_length(x, lengths), lengths)
                outs.append(reverse_within_length(rev, lengths))  # back to reading order
            x = torch.cat(outs, dim=-1)  # (B, T, dirs * H)
        if self.pooling == "max":
            feat = x.masked_fill(~mask[..., None], torch.finfo(x.dtype).min).amax(1)
        else:
            hidden = self.fwd[0].hidden_size
            rows = torch.arange(len(ids), device=ids.device)
            feat = x[rows, lengths - 1, :hidden]  # forward direction: its last real step
            if self.bwd is not None:
                feat = torch.cat([feat, x[:, 0, hidden:]], dim=-1)  # backward: ends at step 0
        return self.head(self.drop(feat))


@torch.no_grad()
def predict_logits(model: nn.Module, tensors: dict[str, Tensor], batch_size: int = 256, *,
                   num_classes: int = 2) -> Tensor:
    """Logits (N, classes) of every row of ``tensors`` (``ids``, ``lengths``, and ``token_type_ids``
    when present: a BERT's segments), in eval mode, in length-sorted batches, returned in the
    original order (``num_classes`` columns when N is 0)."""
    model.eval()
    device = next(model.parameters()).device
    order = torch.argsort(tensors["lengths"])
    names = ("ids", "lengths", "token_type_ids") if "token_type_ids" in tensors else ("ids", "lengths")
    parts = [model(*(tensors[n][idx].to(device) for n in names)).float().cpu() for idx in order.split(batch_size)]
    out = torch.empty(len(order), parts[0].size(-1) if parts else num_classes)
    if parts:
        out[order] = torch.cat(parts)
    return out
