"""ModelEMA: the bias-corrected average by hand, exact restore, and what fit() does with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.engine import fit, load_checkpoint
from attnlab.engine.ema import ModelEMA
from attnlab.errors import AttnlabError


def test_the_average_is_the_bias_corrected_weighted_mean_of_the_weights_seen():
    lin = nn.Linear(3, 2)
    ema = ModelEMA(lin, decay=0.9)
    seen = []
    for _ in range(5):
        with torch.no_grad():
            lin.weight.normal_()
        seen.append(lin.weight.detach().clone())
        ema.update()
    # by hand: weights 0.9^(n-i) * 0.1 for the n weights seen, divided by their sum 1 - 0.9^n
    n = len(seen)
    expected = sum(0.9 ** (n - 1 - i) * 0.1 * w for i, w in enumerate(seen)) / (1 - 0.9**n)
    assert torch.allclose(ema.average[0], expected, atol=1e-6)
    # the first update copies the weights: nothing of the initial weights is left
    fresh = ModelEMA(lin, decay=0.999)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    fresh.update()
    assert torch.equal(fresh.average[0], lin.weight)


def test_applied_swaps_the_average_in_and_restores_the_training_weights_exactly():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    before = [p.detach().clone() for p in model.parameters()]
    with ema.applied():
        inside = [p.detach().clone() for p in model.parameters()]
        with ema.applied():  # re-entrant: nothing changes
            assert all(torch.equal(p, q) for p, q in zip(model.parameters(), inside))
        assert all(torch.equal(w, t) for w, t in zip(ema.training_weights(), before))
    assert all(torch.equal(a, b) for a, b in zip(inside, ema.average))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_tied_weights_are_averaged_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.emb.weight

    assert len(ModelEMA(Tied(), 0.9).tensors) == 1


def test_fit_validates_and_saves_the_average_and_training_is_unchanged(tmp_path, tiny):
    train, val = tiny.batches(tiny.data(40), 8), tiny.batches(tiny.data(16, seed=1), 8, shuffle=False)
    runs = {}
    for ema in (None, 0.7):
        torch.manual_seed(0)
        model = tiny.net()
        metrics = fit(model, tiny.loss, train, val, tiny.cfg(ema=ema, epochs=3), tmp_path / str(ema),
                      meta={"task": "unit"}, progress=False, tensorboard=False)
        runs[ema] = (model, metrics, tiny.train_losses(tmp_path / str(ema)))
    # the average never feeds back into training: identical training losses
    assert runs[None][2] == runs[0.7][2]
    plain, averaged = runs[None][0], runs[0.7][0]
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), averaged.parameters()))
    # the model left behind and the best checkpoint hold the average that validation measured
    reloaded = tiny.net()
    load_checkpoint(tmp_path / "0.7", which="best").load_into(reloaded)
    assert all(torch.equal(a, b) for a, b in zip(averaged.parameters(), reloaded.parameters()))
    from attnlab.engine import evaluate
    assert evaluate(reloaded, tiny.loss, val)["val_loss"] == pytest.approx(runs[0.7][1]["val_loss"], abs=1e-9)


def test_bad_decay_is_a_clear_error(tmp_path, tiny):
    with pytest.raises(AttnlabError, match="train.ema"):
        fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(8), 8), None, tiny.cfg(ema=1.0), tmp_path, progress=False)
