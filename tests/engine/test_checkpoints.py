"""Checkpoints: tied weights, weights_only loading, atomic layout, and clear errors when damaged."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from attnlab.engine import load_checkpoint, save_checkpoint
from attnlab.errors import AttnlabError


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 4)
        self.head = nn.Linear(4, 7, bias=False)
        self.head.weight = self.embed.weight  # weight tying, as in GPT


def _save(run_dir, model=None, step=3, tags=("latest",), task="toy"):
    model = model or Tied()
    training = {"optimizer": {"state": {}, "lr": 0.1}, "rng": torch.get_rng_state(), "step": step}
    return save_checkpoint(run_dir, model, meta={"task": task, "vocab": ["a", "b"]}, training=training,
                           step=step, tags=tags)


def test_round_trip_keeps_tied_weights(tmp_path):
    model = Tied()
    path = _save(tmp_path, model)
    fresh = Tied()
    ckpt = load_checkpoint(tmp_path, task="toy")
    assert ckpt.path == path and ckpt.step == 3 and ckpt.meta["vocab"] == ["a", "b"]
    ckpt.load_into(fresh)
    assert torch.equal(fresh.embed.weight, model.embed.weight)
    assert fresh.head.weight is fresh.embed.weight  # still tied
    assert "attnlab_version" in ckpt.meta
    # training.pt needs nothing beyond weights_only loading
    state = torch.load(path / "training.pt", weights_only=True)
    assert state["step"] == 3 and torch.equal(state["rng"], ckpt.training_state()["rng"])


def test_layout_pointers_and_garbage_collection(tmp_path):
    first = _save(tmp_path, step=1, tags=("latest", "best"))
    second = _save(tmp_path, step=2)
    third = _save(tmp_path, step=3)
    root = tmp_path / "checkpoints"
    assert (root / "latest").read_text().strip() == third.name
    assert (root / "best").read_text().strip() == first.name
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [first.name, third.name]
    assert not second.exists()
    assert load_checkpoint(tmp_path).path == first  # a run dir means its best checkpoint ...
    assert load_checkpoint(tmp_path, which="latest").path == third  # ... or its latest
    assert load_checkpoint(third).path == third  # a checkpoint dir itself
    assert not any(p.name.startswith(".") for p in root.iterdir())  # no temp files left behind


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    good = _save(tmp_path, step=1)
    import attnlab.engine.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, step=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).path == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()] == [good.name]


@pytest.mark.parametrize("damage,words", [
    (lambda p: (p / "meta.json").unlink(), "meta.json is missing"),
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:50]), "damaged"),
    (lambda p: (p / "training.pt").write_bytes(b"\0" * 10), "damaged"),
    (lambda p: (p / "meta.json").write_text("{not json"), "meta.json is unreadable"),
])
def test_damaged_checkpoints_give_clear_errors(tmp_path, damage, words):
    path = _save(tmp_path)
    damage(path)
    with pytest.raises(AttnlabError, match=words):
        load_checkpoint(tmp_path).training_state()


def test_flipped_byte_is_caught_by_checksum(tmp_path):
    path = _save(tmp_path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # inside the tensor data: safetensors alone would not notice
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(AttnlabError, match="checksum"):
        load_checkpoint(path)


def test_wrong_task_missing_path_and_wrong_model(tmp_path):
    _save(tmp_path, task="gpt")
    with pytest.raises(AttnlabError, match="trained by task 'gpt', not 'vit'.*attnlab eval gpt"):
        load_checkpoint(tmp_path, task="vit")
    with pytest.raises(AttnlabError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttnlabError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(AttnlabError, match="does not match this model"):
        load_checkpoint(tmp_path).load_into(nn.Linear(3, 3))


def test_meta_is_plain_json(tmp_path):
    path = _save(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["task"] == "toy" and meta["step"] == 3 and set(meta["sha256"]) == {"model.safetensors", "training.pt"}


@pytest.mark.parametrize("where", ["weights", "training state"])
def test_a_full_disk_is_one_error_and_the_last_checkpoint_stays_latest(tmp_path, monkeypatch, where):
    import errno

    import safetensors

    import attnlab.engine.checkpoint as ck

    good = _save(tmp_path, step=1)
    if where == "weights":  # safetensors reports the OS error as its own type
        def full(*a, **k):
            raise safetensors.SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                              'message: "No space left on device" })')
        monkeypatch.setattr(ck, "save_model", full)
    else:
        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(ck.torch, "save", full)
    with pytest.raises(AttnlabError, match=r"cannot write .*step-00000002: no space left on the disk holding .*; "
                                           r"the last complete checkpoint \(step-00000001\) is still the run's latest"):
        _save(tmp_path, step=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).path == good
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-00000001"]  # no scratch


def test_parameters_held_in_one_buffer_save_and_load(tmp_path):
    """FlatAdamW keeps a group's small parameters as views of one buffer. safetensors refuses a
    view that does not cover its storage, so the checkpoint copies them (the tied weight is
    still stored once), and loads into such views too."""
    from safetensors import safe_open

    from attnlab.engine.schedule import make_optimizer

    def model():
        m = Tied()
        m.a, m.b = nn.Linear(4, 4), nn.Linear(4, 4)
        return m

    trained = model()
    make_optimizer(trained, 0.1, 0.1)
    w = trained.a.weight
    assert w.untyped_storage().nbytes() > w.numel() * 4  # a view of the group's buffer
    path = _save(tmp_path, trained)
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == ["a.bias", "a.weight", "b.bias", "b.weight", "embed.weight"]
    for flat in (False, True):  # into a plain model, and into one whose parameters are views too
        fresh = model()
        if flat:
            make_optimizer(fresh, 0.1, 0.1)
        load_checkpoint(tmp_path, task="toy").load_into(fresh)
        for (name, a), b in zip(trained.named_parameters(), fresh.parameters()):
            assert torch.equal(a, b), name
        assert fresh.head.weight is fresh.embed.weight
