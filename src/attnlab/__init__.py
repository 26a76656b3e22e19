"""attnlab: attention and Transformers from first principles in PyTorch.

The core (attention functions, masks, layers, positional encodings) is imported eagerly; the
model families are imported on first use, so ``import attnlab`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .attention import (
    causal_mask,
    combine_masks,
    numpy_attention,
    padding_mask,
    scaled_dot_product_attention,
)
from .errors import AttnlabError
from .layers import (
    FFN,
    AttentionHead,
    AttentionResidual,
    KVCache,
    MultiHeadedAttention,
    SelfAttention,
    Transformer,
    TransformerBlock,
)
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    interpolate_pos_2d,
)

__version__ = "0.1.0"

# name -> module that defines it (imported lazily on first attribute access)
_LAZY = {
    "LinformerAttention": "attnlab.lowrank",
    "svd_attention": "attnlab.lowrank",
    "word_tokenize": "attnlab.tokenize",
    "PatchEmbed": "attnlab.models.vit",
    "VisionTransformer": "attnlab.models.vit",
    "MyTokenizer": "attnlab.models.tokenizer",
    "DialogueGPT": "attnlab.models.gpt",
    "DialogueLoss": "attnlab.models.gpt",
    "generate": "attnlab.models.gpt",
    "LSTMLanguageModel": "attnlab.models.lstm_lm",
    "LogisticRegressionClassifier": "attnlab.models.text",
    "FFNN": "attnlab.models.text",
    "Attention": "attnlab.models.text",
    "AttentionClassifier": "attnlab.models.text",
    "TextClassificationTransformer": "attnlab.models.text",
    "TextClassificationRNN": "attnlab.models.text",
    "ElmanRNN": "attnlab.lab.rnn",
    "bptt": "attnlab.lab.rnn",
    "TrainConfig": "attnlab.engine",
    "fit": "attnlab.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


__all__ = [
    "AttnlabError",
    "numpy_attention",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "combine_masks",
    "AttentionHead",
    "MultiHeadedAttention",
    "KVCache",
    "FFN",
    "AttentionResidual",
    "Transformer",
    "SelfAttention",
    "TransformerBlock",
    "LearnedPositionalEmbedding",
    "interpolate_pos_2d",
    "SinusoidalPositionalEncoding",
    "RotaryEmbedding",
    *_LAZY,
]
