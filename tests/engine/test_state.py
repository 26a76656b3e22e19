"""TrainState and BestSoFar: the checkpoint's ``state`` dict, best tracking and early stopping."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.engine.state import BestSoFar, TrainState

# training.pt["state"] of every attnlab checkpoint: these keys, in this order
STATE_KEYS = ["step", "epoch", "batch_in_epoch", "train_seconds", "best_value", "best_step", "bad_evals",
              "last_eval_step", "best_metrics", "last_train_loss"]


def test_state_dict_is_the_checkpoint_format_and_round_trips():
    assert list(TrainState().state_dict()) == STATE_KEYS
    state = TrainState(step=7, epoch=1, batch_in_epoch=3, train_seconds=1.5, last_eval_step=6, last_train_loss=0.25,
                       best=BestSoFar(value=0.5, step=4, metrics={"val_loss": 0.5}, bad_evals=1))
    saved = state.state_dict()
    assert saved == {"step": 7, "epoch": 1, "batch_in_epoch": 3, "train_seconds": 1.5, "best_value": 0.5,
                     "best_step": 4, "bad_evals": 1, "last_eval_step": 6, "best_metrics": {"val_loss": 0.5},
                     "last_train_loss": 0.25}
    assert TrainState.from_dict(saved).state_dict() == saved
    assert state.position() == (7, 1, 3) and state.epochs_done(4) == 1.75


def test_best_so_far_follows_the_monitor_and_counts_patience():
    model = nn.Linear(2, 1)
    best = BestSoFar()
    # min mode: 3 and 2 improve, 2.5 and NaN do not, 1 improves and resets the count
    improved = []
    for step, value in enumerate([3.0, 2.0, 2.5, math.nan, 1.0], start=1):
        improved.append(best.update({"val_loss": value, "val_accuracy": 0.1}, step, monitor="val_loss", mode="min",
                                    model=model))
        if step == 4:
            assert best.bad_evals == 2 and best.out_of_patience(2) and not best.out_of_patience(3)
    assert improved == [True, True, False, False, True]
    assert (best.value, best.step, best.bad_evals) == (1.0, 5, 0)
    assert best.metrics == {"val_loss": 1.0, "val_accuracy": 0.1} and not best.out_of_patience(None)

    # the weights are a copy: training on does not change them
    assert best.weights is not None
    kept = best.weights["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert torch.equal(best.weights["weight"], kept)

    up = BestSoFar()  # max mode
    assert [up.update({"val_accuracy": v}, i, monitor="val_accuracy", mode="max", model=model)
            for i, v in enumerate([0.5, 0.4, 0.6])] == [True, False, True]

    best.bad_evals = 1
    best.forget()  # its checkpoint is gone: the search starts afresh, the patience count stays
    assert (best.value, best.step, best.metrics, best.weights, best.bad_evals) == (None, -1, {}, None, 1)
