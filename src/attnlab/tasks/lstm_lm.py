"""``attnlab train|eval lstm-lm``: the word-level LSTM baseline for DialogueGPT.

Same data, split, tokenizer settings, vocabulary, context windows, loss and sampling as
:mod:`attnlab.tasks.gpt` (the plumbing is shared: :mod:`attnlab.tasks.lm`), and the same
presets' budgets, so ``--preset cpu-20min`` of both compares the two architectures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from attnlab.engine.config import TrainConfig
from attnlab.models.configs import LSTMConfig, SampleConfig
from attnlab.tasks.lm import LSTM_STEPS, LMDataConfig, LMInputs, evaluate_lm, load_lm, train_lm

if TYPE_CHECKING:
    from attnlab.models.lstm_lm import LSTMLanguageModel


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
        # the same wall-clock budgets as DialogueGPT's presets, as step counts (tasks.lm)
        "default": {"train.max_steps": LSTM_STEPS["default"]},
        "cpu-20min": {"train.max_steps": LSTM_STEPS["cpu-20min"]},
    }
    DEFAULT_PRESET: ClassVar[str] = "default"


CONFIG, INPUTS = LSTMTaskConfig, LMInputs


def build_model(model_cfg: LSTMConfig) -> LSTMLanguageModel:
    from attnlab.models.lstm_lm import LSTMLanguageModel

    return LSTMLanguageModel(model_cfg)


def train(cfg: LSTMTaskConfig, inputs: LMInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, float]:
    return train_lm("lstm-lm", cfg, inputs, run_dir, build_model, resume=resume, progress=progress,
                    allow_changed_data=allow_changed_data)


def load_model(checkpoint: str | Path) -> tuple[Any, dict[str, Any]]:
    return load_lm("lstm-lm", LSTMTaskConfig, checkpoint, build_model)


def evaluate(checkpoint: str | Path, inputs: LMInputs, *, device: str = "auto") -> dict[str, float]:
    return evaluate_lm("lstm-lm", LSTMTaskConfig, checkpoint, inputs, build_model, device)
