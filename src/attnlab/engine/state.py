"""Where a training run stands: :class:`TrainState` and its :class:`BestSoFar` record.

Both are saved in every checkpoint's ``training.pt`` under ``"state"``, as the one flat dict
:meth:`TrainState.state_dict` spells out (the checkpoint format), so that ``--resume`` continues
exactly: the same position in the data, the same best validation, the same patience count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["BestSoFar", "TrainState"]


@dataclass
class BestSoFar:
    """The best validation so far (by ``train.monitor``) and early stopping's count of the
    validations since then that did not improve on it."""

    value: float | None = None  # the monitored metric at the best validation
    step: int = -1  # the step of the best validation (-1: none yet)
    metrics: dict[str, float] = field(default_factory=dict)  # all of that validation's metrics
    bad_evals: int = 0  # validations since the best one that were no better
    # A CPU copy of the best weights, when this session found them (not saved: the `best`
    # checkpoint holds them).
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def update(self, metrics: dict[str, float], step: int, *, monitor: str, mode: Literal["min", "max"],
               model: nn.Module) -> bool:
        """Take in one validation; on an improvement remember it and ``model``'s weights.
        Returns whether it improved (a NaN never does)."""
        value = metrics[monitor]
        improved = math.isfinite(value) and (self.value is None or
                                             (value < self.value if mode == "min" else value > self.value))
        if improved:
            self.value, self.step, self.metrics, self.bad_evals = value, step, dict(metrics), 0
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad_evals += 1
        return improved

    def out_of_patience(self, patience: int | None) -> bool:
        """Whether early stopping ends the run (``patience`` None: never)."""
        return patience is not None and self.bad_evals >= patience

    def forget(self) -> None:
        """Start the search for the best afresh (its checkpoint is gone); the patience count stays."""
        self.value, self.step, self.metrics, self.weights = None, -1, {}, None


@dataclass
class TrainState:
    """Where training stands; saved in ``training.pt`` so that ``--resume`` continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch being trained
    batch_in_epoch: int = 0  # micro-batches of `epoch` trained on (at the last optimizer step)
    train_seconds: float = 0.0
    best: BestSoFar = field(default_factory=BestSoFar)
    last_eval_step: int = -1
    last_train_loss: float | None = None

    def position(self) -> tuple[int, int, int]:
        """(step, epoch, batch_in_epoch): a checkpoint written at the same position is the same."""
        return self.step, self.epoch, self.batch_in_epoch

    def epochs_done(self, batches_per_epoch: int) -> float:
        """Epochs trained so far, as a fraction (2.5: half-way through the third epoch)."""
        return round(self.epoch + self.batch_in_epoch / max(1, batches_per_epoch), 4)

    def state_dict(self) -> dict[str, Any]:
        """The flat dict ``training.pt`` holds under ``"state"`` (these keys, in this order)."""
        best = self.best
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "train_seconds": self.train_seconds, "best_value": best.value, "best_step": best.step,
                "bad_evals": best.bad_evals, "last_eval_step": self.last_eval_step,
                "best_metrics": dict(best.metrics), "last_train_loss": self.last_train_loss}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """The state :meth:`state_dict` saved."""
        rest = dict(saved)
        best = BestSoFar(value=rest.pop("best_value"), step=rest.pop("best_step"),
                         metrics=rest.pop("best_metrics"), bad_evals=rest.pop("bad_evals"))
        return cls(**rest, best=best)
