"""Warm-up + cosine schedule and the AdamW weight-decay groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.engine.schedule import WarmupCosine, make_optimizer, param_groups


def _sched(**kw):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    base = dict(lr=1.0, total_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    base.update(kw)
    return opt, WarmupCosine(opt, **base)


def test_warmup_then_cosine_to_min_ratio():
    opt, s = _sched()
    assert [s.factor(i) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert s.factor(9) == pytest.approx(1.0)  # warm-up ends at the peak
    assert s.factor(10) == pytest.approx(1.0)
    assert s.factor(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert s.factor(110) == pytest.approx(0.1) and s.factor(500) == pytest.approx(0.1)
    factors = [s.factor(i) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # monotone decay
    assert s.apply(60) == pytest.approx(0.55) and opt.param_groups[0]["lr"] == pytest.approx(0.55)



class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.pos_embed = nn.Parameter(torch.zeros(5, 8))  # a bare matrix that is an embedding
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.proj = nn.Linear(8, 8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 10, bias=False)
        self.head.weight = self.embed.weight  # tied: an embedding, listed once


def test_weight_decay_only_on_matrices():
    m = Model()
    decay, no_decay = param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([m.proj.weight, m.conv.weight])
    assert ids(no_decay["params"]) == ids([m.embed.weight, m.pos_embed, m.cls_token, m.proj.bias, m.conv.bias,
                                           m.norm.weight, m.norm.bias])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))
    opt = make_optimizer(m, 1e-3, 0.1)
    assert isinstance(opt, torch.optim.AdamW)


def test_no_weight_decay_hook():
    m = Model()
    m.no_weight_decay = lambda: {"proj.weight"}
    decay, _ = param_groups(m, 0.1)
    assert {id(p) for p in decay["params"]} == {id(m.conv.weight)}


def test_decay_embeddings_decays_the_token_table_but_not_positions_or_class_tokens():
    m = Model()
    decay, no_decay = param_groups(m, 0.1, decay_embeddings=True)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([m.proj.weight, m.conv.weight, m.embed.weight])  # tied head: once
    assert ids([m.pos_embed, m.cls_token]) <= ids(no_decay["params"])
    m.no_weight_decay = lambda: {"embed.weight"}  # the model's own exemptions still win
    decay, _ = param_groups(m, 0.1, decay_embeddings=True)
    assert id(m.embed.weight) not in ids(decay["params"])
