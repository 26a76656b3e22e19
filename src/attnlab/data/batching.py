"""Batches for the training engine: epoch order, global batches, sharding and length bucketing.

Everything the engine iterates follows one small contract (:class:`Batches`): ``len()`` batches
per epoch and ``iter_epoch(epoch, seed, rank, world)``, whose output depends only on its
arguments. That is what makes ``--resume`` exact: the engine replays an epoch from its seed and
skips the batches it already trained on. A batcher must therefore never draw from the global
random number generators; it draws from :func:`epoch_generator` instead.

The pieces are defined once here and every batcher is built from them:

* :func:`epoch_generator`: the private random stream of one epoch (and one stream within it);
* :func:`batch_indices`: an epoch's global batches, shuffled or in order, optionally bucketed
  by length (similar lengths together, so little compute goes to padding);
* :func:`shard`: one process's slice of a global batch under DDP.

:class:`TensorBatches` slices a dict of tensors (fast, stays on the tensors' device) and
:class:`DatasetBatches` collates the items of any map-style dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import default_collate

__all__ = ["MapDataset", "Batches", "epoch_generator", "batch_indices", "shard", "IndexBatches", "TensorBatches",
           "DatasetBatches"]


class MapDataset(Protocol):
    """A map-style dataset: ``len(ds)`` items, ``ds[i]`` the i-th."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Any: ...


class Batches(Protocol):
    """What :func:`attnlab.engine.fit` iterates: ``len()`` batches per epoch, deterministic order."""

    def __len__(self) -> int: ...

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]: ...


def epoch_generator(epoch: int, seed: int, stream: int = 0) -> torch.Generator:
    """A private generator for ``epoch`` of a run seeded ``seed`` (never touches the global RNG).

    ``stream`` 0 orders the batches; other streams are independent draws of the same epoch
    (augmentation uses ``1 + rank``, so each DDP process gets its own).
    """
    base = seed * 1_000_003 + epoch
    return torch.Generator().manual_seed(base if stream == 0 else base * 65_537 + stream)


def batch_indices(n: int, batch_size: int, *, epoch: int, seed: int, shuffle: bool = True,
                  drop_last: bool = False, lengths: Tensor | None = None, pool: int = 50) -> list[Tensor]:
    """The global batches of one epoch, as index tensors into ``n`` examples.

    Without ``lengths``: a seeded permutation (or ``0..n-1`` when not shuffling) cut into
    consecutive batches. With ``lengths`` (one per example) the batches are *length-bucketed*:
    when shuffling, the permutation is cut into pools of ``pool`` batches, each pool is sorted by
    length and cut into batches, and the batches are shuffled; without shuffling (evaluation)
    all examples are sorted by length, which wastes the least compute on padding.
    ``drop_last`` drops a final batch smaller than ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = epoch_generator(epoch, seed)
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    if lengths is None:
        batches = list(order.split(batch_size))
    elif not shuffle:
        batches = list(torch.argsort(lengths, stable=True).split(batch_size))
    else:
        span = batch_size * pool
        order = torch.cat([c[torch.argsort(lengths[c], stable=True)] for c in order.split(span)]) if n else order
        batches = list(order.split(batch_size))
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


def shard(indices: Tensor, rank: int, world: int) -> Tensor:
    """This process's contiguous slice of one GLOBAL batch (all ranks see equal-sized slices
    when the batch size is divisible by ``world``, so DDP's gradient mean is the global mean)."""
    return torch.tensor_split(indices, world)[rank]


class IndexBatches:
    """The shared part of every batcher: :func:`batch_indices` each epoch, :func:`shard` under
    DDP, and :meth:`fetch` to turn one process's indices into a batch.

    ``batch_size`` is the global batch. A batch smaller than ``world`` is skipped under DDP
    (every process must take part in every step).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 lengths: Tensor | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.drop_last, self.lengths = n, batch_size, shuffle, drop_last, lengths

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]:
        for idx in batch_indices(self.n, self.batch_size, epoch=epoch, seed=seed, shuffle=self.shuffle,
                                 drop_last=self.drop_last, lengths=self.lengths):
            if len(idx) >= world:
                yield self.fetch(shard(idx, rank, world))

    def fetch(self, idx: Tensor) -> Any:
        raise NotImplementedError


class TensorBatches(IndexBatches):
    """Batches sliced from a dict of equal-length tensors (no per-item collate).

    The tensors may live on the accelerator already; slicing keeps them there. ``bucket_by``
    names a tensor of per-example lengths to batch similar lengths together.
    """

    def __init__(self, tensors: dict[str, Tensor], batch_size: int, *, shuffle: bool = True,
                 drop_last: bool = False, bucket_by: str | None = None) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"all tensors need the same length, got {sorted(sizes)}")
        lengths = tensors[bucket_by].cpu() if bucket_by is not None else None
        super().__init__(sizes.pop(), batch_size, shuffle=shuffle, drop_last=drop_last, lengths=lengths)
        self.tensors = tensors

    def fetch(self, idx: Tensor) -> dict[str, Tensor]:
        return {k: t[idx.to(t.device)] for k, t in self.tensors.items()}


class DatasetBatches(IndexBatches):
    """Batches of a map-style dataset (``len(ds)``, ``ds[i]``) put together by ``collate_fn``.

    ``lengths`` (one per item) switches on length bucketing.
    """

    def __init__(self, dataset: MapDataset, batch_size: int, *,
                 collate_fn: Callable[[list[Any]], Any] | None = None, shuffle: bool = True,
                 drop_last: bool = False, lengths: Sequence[int] | None = None) -> None:
        super().__init__(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last,
                         lengths=None if lengths is None else torch.as_tensor(lengths))
        self.dataset, self.collate_fn = dataset, collate_fn or default_collate

    def fetch(self, idx: Tensor) -> Any:
        return self.collate_fn([self.dataset[i] for i in idx.tolist()])
