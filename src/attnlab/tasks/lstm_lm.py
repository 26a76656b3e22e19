"""``attnlab train|eval lstm-lm``: the word-level LSTM baseline for DialogueGPT.

Same data, split, tokenizer settings, vocabulary, context windows, loss and sampling as
:mod:`attnlab.tasks.gpt` (the plumbing is shared, see :func:`attnlab.tasks.gpt.train_lm`), and
the same presets' wall-clock budgets, so ``--preset cpu-20min`` of both compares the two
architectures at equal training time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..engine import TrainConfig
from ..models.lstm_lm import LSTMConfig, LSTMLanguageModel
from .gpt import BUDGET_PRESETS, LMDataConfig, SampleConfig, evaluate_lm, train_lm
from .gpt import add_arguments as _gpt_arguments


@dataclass
class LSTMTaskConfig:
    model: LSTMConfig = field(default_factory=LSTMConfig)
    data: LMDataConfig = field(default_factory=LMDataConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=100, batch_size=32, lr=2e-3, weight_decay=0.01, warmup_steps=100, patience=3))

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"model.context": 32, "model.dim": 32, "model.hidden": 32, "model.num_layers": 1,
                 "model.dropout": 0.0, "data.max_vocab": 500, "sample.num_tokens": 10,
                 "train.max_steps": 20, "train.batch_size": 16, "train.warmup_steps": 2, "train.log_every": 5},
        **BUDGET_PRESETS,  # the same budgets as DialogueGPT's presets
    }
    DEFAULT_PRESET: ClassVar[str] = "default"


CONFIG = LSTMTaskConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _gpt_arguments(parser)


def build_model(model_cfg: LSTMConfig | dict[str, Any]) -> LSTMLanguageModel:
    return LSTMLanguageModel(model_cfg if isinstance(model_cfg, LSTMConfig) else LSTMConfig(**model_cfg))


def train(cfg: LSTMTaskConfig, args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    return train_lm("lstm-lm", cfg, args, run_dir, build_model)


def evaluate(args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    return evaluate_lm("lstm-lm", args, build_model)
