"""attnlab: attention and Transformers from first principles in PyTorch.

Every public name is imported on first use, so ``import attnlab`` (and ``attnlab --help``)
stays fast: ``from attnlab import MultiHeadedAttention`` loads torch and the layers then.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it (imported lazily on first attribute access)
_EXPORTS = {
    "AttnlabError": "attnlab.errors",
    # the attention core
    "numpy_attention": "attnlab.attention",
    "scaled_dot_product_attention": "attnlab.attention",
    "causal_mask": "attnlab.attention",
    "padding_mask": "attnlab.attention",
    "combine_masks": "attnlab.attention",
    # building blocks
    "AttentionHead": "attnlab.layers",
    "MultiHeadedAttention": "attnlab.layers",
    "KVCache": "attnlab.layers",
    "FFN": "attnlab.layers",
    "AttentionResidual": "attnlab.layers",
    "Transformer": "attnlab.layers",
    "SelfAttention": "attnlab.layers",
    "TransformerBlock": "attnlab.layers",
    "LearnedPositionalEmbedding": "attnlab.positional",
    "interpolate_pos_2d": "attnlab.positional",
    "SinusoidalPositionalEncoding": "attnlab.positional",
    "RotaryEmbedding": "attnlab.positional",
    "LinformerAttention": "attnlab.lowrank",
    "svd_attention": "attnlab.lowrank",
    # models, data, losses
    "PatchEmbed": "attnlab.models.vit",
    "VisionTransformer": "attnlab.models.vit",
    "DialogueGPT": "attnlab.models.gpt",
    "generate": "attnlab.models.gpt",
    "LSTMLanguageModel": "attnlab.models.lstm_lm",
    "LogisticRegressionClassifier": "attnlab.models.text",
    "FFNN": "attnlab.models.text",
    "Attention": "attnlab.models.text",
    "AttentionClassifier": "attnlab.models.text",
    "TextClassificationTransformer": "attnlab.models.text",
    "TextClassificationRNN": "attnlab.models.text",
    "MyTokenizer": "attnlab.data.tokenizer",
    "word_tokenize": "attnlab.data.tokenize",
    "DialogueLoss": "attnlab.losses",
    "classification_loss": "attnlab.losses",
    "lm_loss": "attnlab.losses",
    # the lab and the engine
    "ElmanRNN": "attnlab.lab.rnn",
    "bptt": "attnlab.lab.rnn",
    "TrainConfig": "attnlab.engine",
    "fit": "attnlab.engine",
    # in a notebook
    "explore": "attnlab.viz.notebook",
    "curves": "attnlab.viz.notebook",
    "attention_map": "attnlab.viz.notebook",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = list(_EXPORTS)
