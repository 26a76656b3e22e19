"""A BERT-style encoder classifier built from attnlab's post-norm blocks (BERT and DistilBERT).

::

    ids (B, T), token_type_ids (B, T)
      -> word + token-type + learned position embeddings -> LayerNorm (eps) -> dropout
      -> num_layers post-norm :class:`attnlab.layers.TransformerBlock` s
         (heads dim // num_heads wide, exact GELU, LayerNorm eps 1e-12 for BERT)
      -> [CLS] (position 0) -> dense -> tanh (BERT's pooler) or ReLU (DistilBERT's pre_classifier)
      -> dropout -> classifier (B, num_classes)

It is its own class rather than options of :class:`attnlab.models.text.TextClassificationTransformer`
because every part around the blocks differs (an embedding LayerNorm, token types, [CLS] pooling
through a dense layer, heads narrower than the model), and those options would turn that readable
class into two models behind flags. The blocks are the same :class:`TransformerBlock`.

``forward(ids, lengths, token_type_ids=None) -> logits`` as every sentiment classifier
(columns past ``lengths.max()`` are cut off first); ``attend`` returns the same logits and every
layer's weights. ``token_type_ids`` None means segment A everywhere (a single text); a model
built with ``type_vocab_size=0`` (DistilBERT) has no token types and ignores them.
:mod:`attnlab.pretrained.bert` maps Hugging Face weights onto it, tested equal to ``transformers``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.attended import Attended
from attnlab.attention import padding_mask
from attnlab.layers import TransformerBlock
from attnlab.models.configs import TextModelConfig

__all__ = ["BertClassifier", "POOLER_ACTIVATIONS", "build_bert"]

POOLER_ACTIVATIONS = {"pooler": "tanh", "pre_classifier": "relu"}  # model.pooling -> the dense layer's activation


def build_bert(m: TextModelConfig, vocab_size: int, *, num_classes: int = 2) -> BertClassifier:
    """The :class:`BertClassifier` of a ``model.name=bert`` config (``vocab_size`` from its tokenizer)."""
    return BertClassifier(
        vocab_size=vocab_size, max_positions=m.max_positions, dim=m.dim, num_heads=m.num_heads, mlp_dim=m.mlp_dim,
        num_layers=m.num_layers, type_vocab_size=m.type_vocab_size, dropout=m.dropout,
        norm_eps=m.norm_eps if m.norm_eps is not None else 1e-12, activation=m.activation,
        pooling=m.pooling or "pooler", num_classes=num_classes, pad_id=m.pad_id)


class BertClassifier(nn.Module):
    """BERT (``pooling="pooler"``, token types) or DistilBERT (``pooling="pre_classifier"``,
    ``type_vocab_size=0``) with a classification head; keyword-only as every attnlab model."""

    def __init__(self, *, vocab_size: int, max_positions: int = 512, dim: int = 768, num_heads: int = 12,
                 mlp_dim: int = 3072, num_layers: int = 12, type_vocab_size: int = 2, dropout: float = 0.1,
                 norm_eps: float = 1e-12, activation: str = "gelu", pooling: str = "pooler",
                 num_classes: int = 2, pad_id: int = 0) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"dim={dim} must be divisible by num_heads={num_heads}"
        assert pooling in POOLER_ACTIVATIONS, f"unknown pooling {pooling!r}"
        self.word = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Embedding(max_positions, dim)
        self.token_type = nn.Embedding(type_vocab_size, dim) if type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim=dim, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout, attn_dropout=dropout,
                             head_dim=dim // num_heads, activation=activation, norm_eps=norm_eps)
            for _ in range(num_layers))
        self.pooler = nn.Linear(dim, dim)
        self.pooling = pooling
        self.head = nn.Linear(dim, num_classes)
        self.apply(_init_weights)

    @property
    def max_positions(self) -> int:
        return self.position.num_embeddings

    def forward(self, ids: Tensor, lengths: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        return self._run(ids, lengths, token_type_ids, need_weights=False).output

    def attend(self, ids: Tensor, lengths: Tensor, token_type_ids: Tensor | None = None) -> Attended:
        """Logits and every block's weights, [(B, H, T, T)] per block (``extra["token_type_ids"]``:
        the segments the model read, (B, T))."""
        return self._run(ids, lengths, token_type_ids, need_weights=True)

    def encode(self, ids: Tensor, lengths: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """The last block's hidden states (B, T', dim), T' = ``lengths.max()`` (padding rows are junk)."""
        return self._encode(ids, lengths, token_type_ids, need_weights=False)[0]

    def _encode(self, ids: Tensor, lengths: Tensor, token_type_ids: Tensor | None, *,
                need_weights: bool) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        t = max(1, int(lengths.max()))
        if t > self.max_positions:
            from attnlab.errors import AttnlabError

            raise AttnlabError(f"an input of {t} tokens exceeds this model's {self.max_positions} positions; "
                               "lower model.max_len (the tokens kept per text)")
        ids = ids[:, :t]  # (B, T)
        types = torch.zeros_like(ids) if token_type_ids is None else token_type_ids[:, :t]  # (B, T)
        mask = torch.arange(t, device=ids.device)[None, :] < lengths[:, None]  # (B, T): real tokens
        x = self.word(ids)  # (B, T, dim)
        if self.token_type is not None:
            x = x + self.token_type(types)
        x = self.drop(self.norm(x + self.position.weight[:t]))  # (B, T, dim) + (T, dim)
        attn_mask = padding_mask(mask)  # (B, 1, 1, T): no query looks at padding
        weights: list[Tensor] = []
        for block in self.blocks:
            x, w = block(x, attn_mask, need_weights=need_weights)
            if w is not None:
                weights.append(w)  # (B, H, T, T)
        return x, weights, mask, types

    def _run(self, ids: Tensor, lengths: Tensor, token_type_ids: Tensor | None, *, need_weights: bool) -> Attended:
        x, weights, mask, types = self._encode(ids, lengths, token_type_ids, need_weights=need_weights)
        pooled = self.pooler(x[:, 0])  # (B, dim): the [CLS] position
        pooled = torch.tanh(pooled) if self.pooling == "pooler" else torch.relu(pooled)
        logits = self.head(self.drop(pooled))
        extra = {"token_type_ids": types} if need_weights else {}
        return Attended(logits, weights, lengths=mask.sum(1), extra=extra)


def _init_weights(module: nn.Module) -> None:
    """BERT's initialisation (normal, std 0.02; zero biases; unit LayerNorms): what a fine-tune's
    new head (and a model trained here from scratch) starts from."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
