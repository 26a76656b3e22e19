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


def test_the_process_address_space_limit_caps_what_is_available(monkeypatch):
    """``ulimit -v`` (RLIMIT_AS): the room left is the limit less what the process already maps."""
    import resource

    from attnlab import memory

    mapped = memory._read_number("/proc/self/status", "VmSize:")
    assert mapped is not None and mapped > 0
    monkeypatch.setattr(resource, "getrlimit", lambda which: (mapped + 2**30, resource.RLIM_INFINITY))
    left = memory._address_space_left()
    assert left is not None and abs(left - 2**30) < 64 * 2**20  # the process grew a little in between
    assert memory.available_bytes() <= left
    with pytest.raises(AttnlabError, match=r"needs about 2.0 GiB, but [01]\.[0-9] GiB are available on cpu; fix it"):
        memory.require(2 * 2**30, what="this", fix="fix it")
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert memory._address_space_left() is None
