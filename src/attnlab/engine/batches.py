"""Deterministic batch providers: the order depends only on (epoch, seed), which makes resume exact."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import default_collate


class Batches(Protocol):
    """What :func:`attnlab.engine.fit` iterates: ``len()`` batches per epoch, deterministic order."""

    def __len__(self) -> int: ...

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]: ...


def epoch_generator(epoch: int, seed: int) -> torch.Generator:
    """A private generator for one epoch's shuffle (never touches the global RNG)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This process's contiguous slice of one GLOBAL batch (all ranks see equal-sized slices
    when the batch size is divisible by ``world``, so DDP's gradient mean is the global mean)."""
    return torch.tensor_split(indices, world)[rank]


class DatasetBatches:
    """Batches of a map-style dataset (``len(ds)``, ``ds[i]``) with a per-epoch seeded shuffle.

    ``batch_size`` is the global batch: under DDP each of the ``world`` processes gets a
    contiguous ``batch_size / world`` slice of every batch. A final batch smaller than
    ``world`` is dropped under DDP (every process must take part in every step).
    """

    def __init__(self, dataset: Sequence[Any], batch_size: int,
                 collate_fn: Callable[[list[Any]], Any] | None = None,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        assert batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"
        self.dataset, self.batch_size = dataset, batch_size
        self.collate_fn = collate_fn or default_collate
        self.shuffle, self.drop_last = shuffle, drop_last

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]:
        n = len(self.dataset)
        order = torch.randperm(n, generator=epoch_generator(epoch, seed)) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if len(idx) < world:
                return
            yield self.collate_fn([self.dataset[i] for i in shard(idx, rank, world).tolist()])


class TensorBatches:
    """Batches sliced from a dict of equal-length tensors (fast: no per-item collate).

    The tensors may live on the accelerator already; slicing keeps them there.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], batch_size: int,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        sizes = {len(t) for t in tensors.values()}
        assert len(sizes) == 1, f"all tensors need the same length, got {sizes}"
        self.tensors, self.batch_size = tensors, batch_size
        self.n, self.shuffle, self.drop_last = sizes.pop(), shuffle, drop_last

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.randperm(self.n, generator=epoch_generator(epoch, seed)) if self.shuffle else torch.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if len(idx) < world:
                return
            idx = shard(idx, rank, world)
            yield {k: t[idx.to(t.device)] for k, t in self.tensors.items()}
