"""Toy task: name the most frequent token of a padded random sequence (generated data).

A small Transformer encoder with a padding mask and masked mean pooling
(:class:`attnlab.models.toy.ToyClassifier`) learns it in seconds on a CPU (README, "The command
line", has the measured accuracy). It exercises the whole engine and the CLI without any download::

    attnlab train toy --out runs/toy
    attnlab eval toy --checkpoint runs/toy
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from attnlab.config import Range, Seed, config_from_dict, config_to_dict
from attnlab.engine.config import TrainConfig
from attnlab.models.configs import ToyModelConfig

if TYPE_CHECKING:  # the work imports torch when it starts (a fast --help)
    from torch import Tensor, nn

    from attnlab.data.batching import TensorBatches
    from attnlab.losses import Stats
    from attnlab.models.toy import ToyClassifier


@dataclass
class ToyDataConfig:
    train_size: Annotated[int, Range(ge=1, le=2**20)] = 3072
    val_size: Annotated[int, Range(ge=1, le=2**20)] = 512
    test_size: Annotated[int, Range(ge=1, le=2**20)] = 512
    seed: Seed = 1234  # the data set's own seed (independent of train.seed)


@dataclass
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyDataConfig = field(default_factory=ToyDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=3, batch_size=64, lr=3e-3, warmup_steps=30, weight_decay=0.01, log_every=10,
        monitor="val_accuracy"))

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {},  # the default (seconds of training; README: its accuracy)
        # under a second of training; for tests and smoke runs
        "tiny": {"model.num_layers": 1, "data.train_size": 512, "data.val_size": 128, "data.test_size": 128,
                 "train.epochs": 2, "train.batch_size": 32, "train.warmup_steps": 5},
    }
    DEFAULT_PRESET: ClassVar[str] = "small"


@dataclass
class ToyInputs:
    """The toy task generates its data: no inputs."""


CONFIG, INPUTS = ToyConfig, ToyInputs


def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Stats]:
    from attnlab.losses import classification_loss

    logits = model(batch["tokens"])
    return classification_loss(logits, batch["labels"])


def _splits(cfg: ToyConfig) -> dict[str, TensorBatches]:
    from attnlab.data.batching import TensorBatches
    from attnlab.data.toy import make_toy_data

    d, m, bs = cfg.data, cfg.model, cfg.train.batch_size
    sizes = {"train": d.train_size, "val": d.val_size, "test": d.test_size}
    return {name: TensorBatches(make_toy_data(n, vocab_size=m.vocab_size, seq_len=m.seq_len, seed=d.seed + i),
                                bs, shuffle=name == "train")
            for i, (name, n) in enumerate(sizes.items())}


def train(cfg: ToyConfig, inputs: ToyInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, float]:
    from attnlab.engine import fit, seed_everything, training_device
    from attnlab.engine.evaluate import evaluate as evaluate_batches
    from attnlab.memory import require, training_bytes
    from attnlab.models.toy import ToyClassifier

    require(training_bytes(lambda: ToyClassifier(cfg.model)), what="training this toy model",
            fix="lower model.dim or model.num_layers", device=training_device(cfg.train.device))
    seed_everything(cfg.train.seed)
    data = _splits(cfg)
    model = ToyClassifier(cfg.model)
    metrics = fit(model, loss_fn, data["train"], data["val"], cfg.train, run_dir,
                  meta={"task": "toy", "config": config_to_dict(cfg)}, resume=resume, progress=progress,
                  allow_changed_data=allow_changed_data)
    metrics.update(evaluate_batches(model, loss_fn, data["test"], prefix="test_"))
    return metrics


def load_model(checkpoint: str | Path) -> tuple[ToyClassifier, dict[str, Any]]:
    from attnlab.engine import load_checkpoint
    from attnlab.models.toy import ToyClassifier

    ckpt = load_checkpoint(checkpoint, task="toy")
    cfg = config_from_dict(ToyConfig, ckpt.meta["config"])
    model = ToyClassifier(cfg.model)
    ckpt.load_into(model)
    return model.eval(), ckpt.meta


def evaluate(checkpoint: str | Path, inputs: ToyInputs, *, device: str = "auto") -> dict[str, float]:
    from attnlab.engine import training_device
    from attnlab.engine.evaluate import evaluate as evaluate_batches

    model, meta = load_model(checkpoint)
    data = _splits(config_from_dict(ToyConfig, meta["config"]))
    model.to(training_device(device))
    out = evaluate_batches(model, loss_fn, data["val"], prefix="val_")
    out.update(evaluate_batches(model, loss_fn, data["test"], prefix="test_"))
    out["step"] = meta.get("step", 0)
    return out


class ToyReader:
    """How the toy classifier reads its input (:class:`attnlab.attended.Reader`, kind ``classifier``):
    token ids 1 to ``vocab_size`` separated by spaces; the classes are the token values (class ``c`` is
    value ``c + 1``), named "token value 3" so that no one reads them as positions. Its notes state the
    task and the right answer for the tokens typed."""

    kind = "classifier"
    title = "toy Transformer classifier"
    image_size = 0
    task = "the task: name the most frequent token value of the sequence"

    def __init__(self, model: ToyClassifier) -> None:
        self.config = model.config
        self.labels = [self.label(c + 1) for c in range(self.config.vocab_size)]

    @staticmethod
    def label(value: int) -> str:
        return f"token value {value}"

    def answer(self, ids: list[int]) -> str:
        """The right answer for ``ids`` in words: the most frequent value, or the tie (no single answer)."""
        from collections import Counter

        counts = Counter(ids).most_common()
        top = [v for v, n in counts if n == counts[0][1]]
        if len(top) > 1:
            tied = ", ".join(str(v) for v in sorted(top))
            return (f"no single right answer: values {tied} tie at {counts[0][1]} each (training sequences "
                    "never tie)")
        return f"the right answer for these tokens: {self.label(top[0])} ({counts[0][1]} of {len(ids)})"

    def text(self, text: str, limit: int) -> Any:
        import torch

        from attnlab.attended import Encoded
        from attnlab.errors import AttnlabError

        c = self.config
        try:
            ids = [int(t) for t in text.replace(",", " ").split()]
        except ValueError:
            raise AttnlabError(f"the toy model reads token ids 1 to {c.vocab_size} separated by spaces, "
                               f"got {text!r}") from None
        if any(not 1 <= i <= c.vocab_size for i in ids):
            raise AttnlabError(f"the toy model's tokens are 1 to {c.vocab_size}; got {ids}")
        limit = min(c.seq_len, limit)
        notes = []
        if len(ids) > limit:
            notes.append(f"{len(ids)} tokens given; the model reads the first {limit}")
            ids = ids[:limit]
        if not ids:
            raise AttnlabError(f"the toy model reads token ids 1 to {c.vocab_size} separated by spaces; got none")
        notes = [f"{self.task}; {self.answer(ids)}", *notes]
        return Encoded((torch.tensor([ids]),), [str(i) for i in ids], notes)


def reader(model: ToyClassifier, meta: dict[str, Any]) -> ToyReader:
    """How the model reads token ids typed by a person (the door to :meth:`ToyClassifier.attend`)."""
    return ToyReader(model)
