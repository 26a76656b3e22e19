"""``attnlab train|eval gpt``: DialogueGPT on Tiny Shakespeare (or any ``--data`` text).

Every speaker turn is one example starting with the start token; a turn longer than the
context is split into windows. The vocabulary (word level, lower-cased) comes from the training
turns only; validation perplexity is per word token, unknown words (``<unk>``) included. A
generated sample is printed after every validation and at the end. The plumbing shared with the
LSTM baseline is in :mod:`attnlab.tasks.lm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from attnlab.engine.config import TrainConfig
from attnlab.errors import AttnlabError
from attnlab.models.configs import GPTConfig, SampleConfig
from attnlab.tasks.lm import GPT_STEPS, LMDataConfig, LMInputs, LMReader, evaluate_lm, load_lm, train_lm

if TYPE_CHECKING:
    from attnlab.models.gpt import DialogueGPT
    from attnlab.pretrained.source import Source

# What both nanoGPT recipes share: characters as one stream, no biases, lr 1e-3 decaying to 1e-4 after 100
# warm-up steps, beta2 0.99, weight decay 0.1 on every matrix (the tied embedding too), a
# validation every 250 steps, no early stop.
CHAR_STREAM: dict[str, Any] = {
    "data.mode": "stream", "data.tokenizer": "char", "data.lowercase": False, "sample.num_tokens": 300,
    "model.bias": False,
    "train.lr": 1e-3, "train.min_lr_ratio": 0.1, "train.warmup_steps": 100, "train.beta2": 0.99,
    "train.weight_decay": 0.1, "train.decay_embeddings": True, "train.eval_every": 250, "train.patience": None,
}


@dataclass
class GPTTaskConfig:
    model: GPTConfig = field(default_factory=GPTConfig)
    data: LMDataConfig = field(default_factory=LMDataConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=100, batch_size=32, lr=1e-3, weight_decay=0.1, warmup_steps=100, patience=3))

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # a few seconds: for tests and smoke runs
        "tiny": {"model.context": 32, "model.dim": 32, "model.num_heads": 2, "model.num_layers": 1,
                 "model.mlp_dim": 64, "model.dropout": 0.0, "data.max_vocab": 500,
                 "sample.num_tokens": 10, "train.max_steps": 20, "train.batch_size": 16,
                 "train.warmup_steps": 2, "train.log_every": 5},
        # README command 1 (its measured time and result are in the README)
        "default": {"train.max_steps": GPT_STEPS["default"]},
        # The 20-minute comparison with `attnlab train lstm-lm --preset cpu-20min` (README, "How the
        # GPT recipe got there"): wider, more dropout, no early stop, a running average of the
        # weights and weight decay on the tied embedding.
        "cpu-20min": {"train.max_steps": GPT_STEPS["cpu-20min"], "model.dim": 192, "model.num_heads": 6,
                      "model.mlp_dim": 768, "model.dropout": 0.25, "train.patience": None,
                      "train.ema": 0.999, "train.weight_decay": 0.3,
                      "train.decay_embeddings": True},
        # nanoGPT's shakespeare_char models on the same text and split (the first 90 % of the
        # characters train): its CPU "baby GPT" and its GPU model, with the same shape, batch,
        # context, steps, schedule and dropout (the GPU model's 0.2 on the attention weights too:
        # README, "On a GPU", 1.4618 on an H200 against nanoGPT's 1.4697). The CPU one trains at
        # 3x nanoGPT's learning rate and validates a running average of its weights; with
        # `--set train.lr=1e-3 --set train.ema=null` it is nanoGPT's recipe exactly.
        "char-cpu": {**CHAR_STREAM, "model.context": 64, "model.dim": 128, "model.num_heads": 4,
                     "model.num_layers": 4, "model.mlp_dim": 512, "model.dropout": 0.0,
                     "train.max_steps": 2000, "train.batch_size": 12, "train.lr": 3e-3, "train.ema": 0.99},
        "char-gpu": {**CHAR_STREAM, "model.context": 256, "model.dim": 384, "model.num_heads": 6,
                     "model.num_layers": 6, "model.mlp_dim": 1536, "model.dropout": 0.2,
                     "model.attn_dropout": 0.2, "train.max_steps": 5000, "train.batch_size": 64},
        # nanoGPT's finetune_shakespeare in spirit, for `--init DIR|hf:NAME` (a pretrained GPT-2): its own
        # BPE over the text as one stream, a small constant learning rate, few steps, windows shorter than
        # GPT-2's 1,024 positions so that a CPU step takes seconds
        "finetune": {"data.mode": "stream", "data.tokenizer": "pretrained", "data.lowercase": False,
                     "data.window": 256, "model.dropout": 0.0, "model.attn_dropout": 0.0,
                     "train.lr": 3e-5, "train.warmup_steps": 0, "train.min_lr_ratio": 1.0, "train.max_steps": 20,
                     "train.batch_size": 4, "train.weight_decay": 0.0, "train.eval_every": 5,
                     "train.patience": None, "data.max_val_tokens": 8192},
    }
    DEFAULT_PRESET: ClassVar[str] = "default"
    GPU_PRESETS: ClassVar[dict[str, str]] = {"char-gpu": "char-cpu"}  # on a CPU, its steps take seconds each


@dataclass
class GPTInputs(LMInputs):
    init: str | None = field(default=None, metadata={"help": (
        "start from pretrained weights: a GPT-2 directory (config.json, model.safetensors, tokenizer files), "
        "hf:NAME (e.g. hf:gpt2, downloaded) or nanoGPT's ckpt.pt; the text is read with its tokenizer as one "
        "stream (use --preset finetune)")})


CONFIG, INPUTS = GPTTaskConfig, GPTInputs
EXAMPLE = """\
attnlab train gpt --init hf:gpt2 --preset finetune                 # nanoGPT's finetune_shakespeare, on a CPU
attnlab train gpt --init ~/models/gpt2 --preset finetune --data my.txt --set train.max_steps=100"""


def build_model(model_cfg: GPTConfig) -> DialogueGPT:
    from attnlab.models.gpt import DialogueGPT

    return DialogueGPT(model_cfg)


def train(cfg: GPTTaskConfig, inputs: GPTInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, float]:
    return train_lm("gpt", cfg, inputs, run_dir, build_model, resume=resume, progress=progress,
                    allow_changed_data=allow_changed_data)


def load_model(checkpoint: str | Path) -> tuple[Any, dict[str, Any]]:
    return load_lm("gpt", GPTTaskConfig, checkpoint, build_model)


def evaluate(checkpoint: str | Path, inputs: LMInputs, *, device: str = "auto") -> dict[str, float]:
    return evaluate_lm("gpt", GPTTaskConfig, checkpoint, inputs, build_model, device)


def load_pretrained(source: Source) -> tuple[DialogueGPT, dict[str, Any]]:
    """A pretrained GPT-2 (or nanoGPT) as a gpt run: the model, and a meta with its config (read as
    one stream with its own tokenizer) and where it came from (``meta["pretrained"]``)."""
    from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
    from attnlab.pretrained.gpt2 import build
    from attnlab.pretrained.source import source_meta

    model = build(source)
    tok = PretrainedTokenizer.from_directory(source.directory)
    model.never_generated = tok.never_generated
    if len(tok) > model.config.vocab_size:
        raise AttnlabError(f"{source.spec}: its tokenizer has {len(tok):,} ids but the model "
                           f"{model.config.vocab_size:,}; the tokenizer files belong to another model")
    return model, pretrained_meta(model.config, tok.to_dict(), source_meta(source))


def pretrained_meta(model_cfg: GPTConfig, tokenizer: dict[str, Any], pretrained: dict[str, Any]) -> dict[str, Any]:
    """The meta of a gpt run whose model and tokenizer come from a pretrained source."""
    from attnlab.config import config_to_dict

    cfg = GPTTaskConfig(model=model_cfg, data=LMDataConfig(mode="stream", tokenizer="pretrained", lowercase=False))
    return {"task": "gpt", "config": config_to_dict(cfg), "tokenizer": tokenizer, "pretrained": pretrained}


def reader(model: DialogueGPT, meta: dict[str, Any]) -> LMReader:
    """How the model reads a prompt (the explorer's door to :meth:`DialogueGPT.attend`)."""
    title = "GPT-2 language model" if meta.get("pretrained") else "DialogueGPT language model"
    return LMReader(meta, title)
