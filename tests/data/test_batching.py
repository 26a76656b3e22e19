"""Batch providers: deterministic per (epoch, seed), and DDP shards that add up to the global batch."""

from __future__ import annotations

import torch

from attnlab.data.batching import DatasetBatches, TensorBatches


def _ids(batches, **kw):
    return [b["i"].tolist() for b in batches.iter_epoch(**kw)]


def test_dataset_batches_deterministic_and_sharded():
    data = [{"i": torch.tensor(i)} for i in range(10)]
    b = DatasetBatches(data, 4)
    assert len(b) == 3 and len(DatasetBatches(data, 4, drop_last=True)) == 2
    first = _ids(b, epoch=0, seed=1)
    assert first == _ids(b, epoch=0, seed=1) and first != _ids(b, epoch=1, seed=1)
    assert sorted(sum(first, [])) == list(range(10))
    r0, r1 = _ids(b, epoch=0, seed=1, rank=0, world=2), _ids(b, epoch=0, seed=1, rank=1, world=2)
    assert [a + c for a, c in zip(r0, r1)] == first  # rank slices are contiguous parts of each global batch
    assert _ids(DatasetBatches(data, 4, shuffle=False), epoch=3, seed=9)[0] == [0, 1, 2, 3]


def test_tensor_batches_match_dataset_batches_order():
    t = TensorBatches({"i": torch.arange(10)}, 4)
    d = DatasetBatches([{"i": torch.tensor(i)} for i in range(10)], 4)
    assert _ids(t, epoch=2, seed=5) == _ids(d, epoch=2, seed=5)
    assert _ids(t, epoch=2, seed=5, rank=1, world=2) == _ids(d, epoch=2, seed=5, rank=1, world=2)
