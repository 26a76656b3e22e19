"""Memory estimates: counted by hand for a model with trained and frozen parameters."""

from __future__ import annotations

import pytest
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.memory import require, training_bytes


def _half_frozen() -> nn.Module:
    model = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 4))  # 800 frozen, 8*4+4 = 36 trained
    model[0].weight.requires_grad_(False)
    return model


def test_training_bytes_counts_frozen_weights_once():
    # trained: weight + gradient + two AdamW moments, 4 fp32 numbers; frozen: the weight alone
    assert training_bytes(_half_frozen) == 16 * 36 + 4 * 800


def test_require_refuses_with_the_fix():
    with pytest.raises(AttnlabError, match="lower model.dim"):
        require(10**18, device="cpu", what="training this", fix="lower model.dim")
