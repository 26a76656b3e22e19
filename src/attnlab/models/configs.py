"""The model families' config dataclasses: every ``--set model.X`` (and ``sample.X``) field.

They live here, apart from the ``nn.Module`` s that read them, because this module imports no
torch: ``attnlab train TASK --help``, ``--print-config``, ``--list-presets`` and a bad ``--set``
are answered from the configs alone, and torch is loaded only when work starts. Each model
module re-exports its own config (``from attnlab.models.gpt import GPTConfig`` works as before).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from attnlab.config import Count, Layers, NonNegative, Range, Rate, Seed, Size
from attnlab.errors import AttnlabError
from attnlab.native import backend_choice

__all__ = [
    "ToyModelConfig", "GPTConfig", "SampleConfig", "LSTMConfig", "ViTConfig",
    "TextModelName", "MODELS", "NEEDS_VECTORS", "PRETRAINED", "POOLING", "TextModelConfig",
    "DECODE_ENV", "DECODE_BACKENDS", "decode_backend",
]


Activation = Literal["gelu", "gelu_tanh"]  # attnlab.layers.ACTIVATIONS: exact GELU or its tanh approximation


# --------------------------------------------------------------------------- toy (models/toy.py)
@dataclass
class ToyModelConfig:
    vocab_size: Annotated[int, Range(ge=2, le=2**16)] = 8  # real tokens are 1..vocab_size (0 pads); also
    # the number of classes
    seq_len: Annotated[int, Range(ge=2, le=2**16)] = 24  # maximum length; each sequence has between
    # seq_len/2 and seq_len tokens
    dim: Size = 32  # model width
    head_dim: Size = 16  # per-head width
    mlp_dim: Size = 64
    num_heads: Size = 2
    num_layers: Layers = 2
    dropout: Rate = 0.0


# --------------------------------------------------------------------------- GPT (models/gpt.py)
@dataclass
class GPTConfig:
    vocab_size: NonNegative = 0  # set from the tokenizer when training; 0 = not known yet
    context: Annotated[int, Range(ge=2, le=2**20)] = 256  # maximum positions seen at once (learned
    # positional embedding size); 256 lets a 256-word generation run on the KV cache without a window jump
    dim: Size = 128  # model width
    num_heads: Size = 4  # attention heads; each is dim // num_heads wide
    num_layers: Layers = 4  # Transformer blocks
    mlp_dim: Size = 512  # hidden width of the feed-forward layers (4 * dim, as in GPT-2)
    dropout: Rate = 0.1  # on the embeddings and the residual branches
    attn_dropout: Rate = 0.0  # on the attention weights (inside the fused kernel, as dropout_p)
    tie_weights: bool = True  # LM head shares the token-embedding matrix (fewer parameters)
    bias: bool = True  # biases in the linear layers and LayerNorms (nanoGPT's recipes drop them)
    activation: Activation = "gelu"  # the feed-forward GELU: exact, or gelu_tanh (GPT-2's approximation)
    norm_eps: Annotated[float, Range(gt=0, le=1)] = 1e-5  # LayerNorm eps (GPT-2: 1e-5)

    def check(self) -> None:
        if self.dim % self.num_heads:
            raise AttnlabError(f"model.dim={self.dim} must be divisible by model.num_heads={self.num_heads}")


@dataclass
class SampleConfig:
    """How a language model's samples are drawn: a task config's ``sample`` section (printed
    during training) and the defaults of ``attnlab generate``."""

    prompt: str = ""  # text the sample continues ("" = from the start token, or a new line in stream mode)
    num_tokens: Annotated[int, Range(ge=0, le=10_000)] = 50  # tokens per sample
    temperature: Annotated[float, Range(ge=0)] = 0.8  # 0 = greedy
    top_k: Count | None = 40  # sample among the k most likely tokens (None: all)
    seed: Seed = 0  # sampling seed, so samples are reproducible


DECODE_ENV = "ATTNLAB_DECODE"
DECODE_BACKENDS = ("auto", "python", "cpp")


def decode_backend(environ: Mapping[str, str] | None = None) -> str:
    """What runs DialogueGPT's one-row decoding step (:mod:`attnlab.models.gpt_step`), from
    ``ATTNLAB_DECODE``: ``auto`` (the default: C++ where this machine can build it, else Python),
    ``python`` or ``cpp``. The command line checks it before any work starts, so a bad value is one
    error line, not a failure in the middle of a run."""
    return backend_choice(DECODE_ENV, DECODE_BACKENDS, "the C++ step where it can be built, else Python", environ)


# --------------------------------------------------------------------------- LSTM LM (models/lstm_lm.py)
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


# --------------------------------------------------------------------------- ViT (models/vit.py)
@dataclass
class ViTConfig:
    image_size: Size = 32  # training image side; other sizes work by interpolating positions
    patch_size: Size = 4  # side of a square patch (in stem-output pixels when a stem is used)
    in_channels: Size = 3
    num_classes: Annotated[int, Range(ge=2, le=2**20)] = 10
    dim: Size = 128  # token width
    num_layers: Layers = 6
    num_heads: Size = 4
    head_dim: Size = 32  # per-head width
    mlp_dim: Size = 256  # hidden width of each block's feed-forward network
    head_hidden: Annotated[int, Range(ge=0, le=2**20)] = 0  # hidden width of the MLP head on the class
    # token; 0 = one linear layer
    dropout: Rate = 0.0  # on the token embeddings and the residual branches
    attn_dropout: Rate = 0.0  # on the attention weights (inside the fused kernel, as dropout_p)
    drop_path: Rate = 0.0  # stochastic depth of the last block (earlier blocks: linearly less)
    stem_channels: tuple[Size, ...] = ()  # conv stem widths, each halving the resolution; () = plain ViT
    activation: Activation = "gelu"  # the feed-forward GELU: exact (ViT's), or gelu_tanh
    norm_eps: Annotated[float, Range(gt=0, le=1)] = 1e-5  # LayerNorm eps (Hugging Face ViT: 1e-12, timm: 1e-6)
    resize_inputs: bool = False  # resize every image to image_size first (bilinear, on the device): a
    # pretrained ViT (224 px) fine-tuned or evaluated on CIFAR-10's 32 px images

    def check(self) -> None:
        cut = 2 ** len(self.stem_channels) * self.patch_size
        if self.image_size % cut:
            raise AttnlabError(f"model.image_size={self.image_size} is not divisible by the stem's down-sampling "
                               f"times the patch size ({cut}); change model.patch_size or model.stem_channels")


# --------------------------------------------------------------------------- sentiment (models/text.py)
TextModelName = Literal["logreg", "ffnn", "attention", "transformer", "rnn", "bert"]
MODELS: tuple[TextModelName, ...] = ("logreg", "ffnn", "attention", "transformer", "rnn", "bert")
NEEDS_VECTORS = ("logreg", "ffnn", "attention")  # built on frozen pretrained word vectors
PRETRAINED = ("bert",)  # start from pretrained weights and their WordPiece tokenizer (--init DIR or hf:NAME)
POOLING = {"transformer": ("mean", "max", "meanmax"), "rnn": ("last", "max"),
           "bert": ("pooler", "pre_classifier")}  # first = default


@dataclass
class TextModelConfig:
    name: TextModelName = "logreg"
    max_len: Size = 400  # tokens kept per review (the first ones); longer reviews are truncated
    vocab_size: Count = 50000  # words read from --embeddings, or kept from the training data
    min_count: Count = 2  # without --embeddings: keep training words seen at least this often
    hidden_size: Size = 20  # ffnn hidden units; rnn hidden size per direction
    query_key_size: Size = 32  # attention: d_k
    dim: Size = 64  # transformer / rnn embedding width (the first 50 start from --embeddings)
    num_heads: Size = 2  # transformer
    mlp_dim: Size = 128  # transformer feed-forward width
    num_layers: Layers = 1  # transformer blocks / rnn layers
    dropout: Rate = 0.1
    pooling: Literal["mean", "max", "meanmax", "last", "pooler", "pre_classifier"] | None = None  # None: the
    # model's default; transformer: mean (default) | max | meanmax; rnn: max (default) | last; bert: pooler
    # (default: dense + tanh on [CLS]) | pre_classifier (DistilBERT's dense + ReLU on [CLS])
    cell: Literal["lstm", "gru"] = "lstm"  # rnn
    bidirectional: bool = True  # rnn
    packed: bool = False  # rnn: run over PackedSequences (same numbers, many times slower on a CPU)
    activation: Literal["gelu", "gelu_tanh"] = "gelu"  # transformer / bert feed-forward GELU (exact, or tanh)
    norm_eps: Annotated[float, Range(gt=0, le=1)] | None = None  # LayerNorm eps; None: the model's own
    # (transformer 1e-5, bert 1e-12)
    # bert only (set from the checkpoint's config.json by --init):
    max_positions: Size = 512  # learned position table; model.max_len must fit in it
    type_vocab_size: Annotated[int, Range(ge=0, le=2**10)] = 2  # token types (segments A/B); 0 = none (DistilBERT)
    pad_id: NonNegative = 0  # the tokenizer's [PAD] id (its embedding row gets no gradient)

    def check(self) -> None:
        """Rules across fields (run by :func:`attnlab.config.validate`, before any data is read)."""
        choices = POOLING.get(self.name)
        if self.pooling is not None and (choices is None or self.pooling not in choices):
            fits = f"use one of {', '.join(choices)} (or none for {choices[0]})" if choices else "leave it none"
            raise AttnlabError(f"model.pooling={self.pooling} does not apply to the {self.name} model; {fits}")
        if self.name == "bert":
            if self.dim % self.num_heads:
                raise AttnlabError(f"model.dim={self.dim} must be divisible by model.num_heads={self.num_heads}")
            if self.max_len > self.max_positions:
                raise AttnlabError(f"model.max_len={self.max_len} exceeds model.max_positions={self.max_positions} "
                                   f"(the BERT's position table); set model.max_len <= {self.max_positions}")


# --------------------------------------------------------------------------- translation (models/seq2seq.py,
# models/rnn_seq2seq.py; the task is tasks/translate.py)
Seq2SeqModelName = Literal["transformer", "rnn"]
SEQ2SEQ_MODELS: tuple[Seq2SeqModelName, ...] = ("transformer", "rnn")


@dataclass
class Seq2SeqConfig:
    """An encoder-decoder translation model: the Transformer (pre-norm blocks, cross-attention)
    or the RNN baseline (GRU/LSTM encoder-decoder with Luong attention)."""

    name: Seq2SeqModelName = "transformer"
    dim: Size = 256  # embedding width (and the Transformer's model width)
    num_heads: Size = 4  # transformer
    mlp_dim: Size = 1024  # transformer feed-forward width
    encoder_layers: Layers = 3  # transformer encoder blocks (rnn: layers of the encoder and decoder)
    decoder_layers: Layers = 3  # transformer decoder blocks
    dropout: Rate = 0.1
    attn_dropout: Rate = 0.0  # transformer: dropout on the attention weights
    max_len: Size = 48  # BPE pieces kept per sentence (longer ones are cut), and the decoding limit
    shared_embeddings: bool = True  # one embedding table for source and target (needs data.shared_vocab)
    tie_output: bool = True  # the output projection is the target embedding table
    hidden_size: Size = 256  # rnn: hidden units (the encoder has this many per direction)
    cell: Literal["gru", "lstm"] = "gru"  # rnn

    def check(self) -> None:
        if self.name == "transformer" and self.dim % self.num_heads:
            raise AttnlabError(f"model.dim={self.dim} is not divisible by model.num_heads={self.num_heads}; "
                               "change one of them")
