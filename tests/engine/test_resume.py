"""A run stopped and resumed gives bit-identical losses and weights to an uninterrupted one (CPU fp32)."""

from __future__ import annotations

import pytest
import torch

from attnlab.engine import fit


@pytest.mark.parametrize("grad_accum,eval_every,ema",
                         [(1, 3, None), (1, 5, None), (2, 2, None), (1, None, None), (1, 3, 0.8)])
def test_resume_is_bit_exact(tmp_path, tiny, grad_accum, eval_every, ema):
    # 40 examples / batch 8 = 5 batches per epoch, so checkpoints fall mid-epoch and on epoch ends
    # (eval_every=5: the checkpoint that resumes is exactly at the end of epoch 1)
    cfg = tiny.cfg(grad_accum=grad_accum, eval_every=eval_every, ema=ema)
    sample = lambda model, metrics: torch.rand(3)  # noqa: E731  (a callback drawing random numbers)
    train, val = tiny.batches(tiny.data(40), 8), tiny.batches(tiny.data(16, seed=1), 8, shuffle=False)

    torch.manual_seed(0)
    model_a = tiny.net()
    metrics_a = fit(model_a, tiny.loss, train, val, cfg, tmp_path / "a", meta={"task": "unit"}, progress=False,
                    tensorboard=False, on_eval=sample)

    torch.manual_seed(0)
    model_b = tiny.net()
    with pytest.raises(KeyboardInterrupt, match="interrupted at training call 9"):
        fit(model_b, tiny.interrupt(tiny.loss, at_call=9), train, val, cfg, tmp_path / "b", meta={"task": "unit"},
            progress=False, tensorboard=False, on_eval=sample)
    torch.manual_seed(123)  # a differently initialised model: everything must come from the checkpoint
    model_b = tiny.net()
    metrics_b = fit(model_b, tiny.loss, train, val, cfg, tmp_path / "b", meta={"task": "unit"}, resume=True,
                    progress=False, tensorboard=False, on_eval=sample)

    losses_a, losses_b = tiny.train_losses(tmp_path / "a"), tiny.train_losses(tmp_path / "b")
    assert len(losses_a) == metrics_a["steps"] > 5
    assert losses_b == losses_a  # exact float equality, and no duplicated steps
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)
    for key in ("val_loss", "val_accuracy", "steps", "best_step", "train_loss"):
        assert metrics_a[key] == metrics_b[key], key


def test_resume_of_a_finished_run_does_nothing(tmp_path, tiny):
    cfg = tiny.cfg(epochs=1)
    train, val = tiny.batches(tiny.data(24), 8), tiny.batches(tiny.data(8, seed=1), 8)
    first = fit(tiny.net(), tiny.loss, train, val, cfg, tmp_path, meta={"task": "unit"}, progress=False,
                tensorboard=False)
    again = fit(tiny.net(), tiny.loss, train, val, cfg, tmp_path, meta={"task": "unit"}, resume=True,
                progress=False, tensorboard=False)
    assert again["steps"] == first["steps"] == 3
    assert again["val_loss"] == first["val_loss"]
