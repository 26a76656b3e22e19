"""`evaluate`: a model's mean loss (and accuracy / perplexity) over a set of batches, and
`StatSums`, the running sums behind it (and behind the logged training loss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attnlab.data.batching import Batches
from attnlab.device import autocast_context, move_to
from attnlab.engine import distributed as ddp
from attnlab.losses import Stats
from attnlab.metrics import summarize

__all__ = ["LossFn", "StatSums", "evaluate"]

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, Stats]"]


class StatSums:
    """Sums of a loss function's statistics (``loss_sum``, ``count``, ``correct``) over batches.

    The sums stay on the device (no synchronisation per batch); :meth:`reduce` adds them up over
    DDP processes and returns plain floats.
    """

    KEYS = ("loss_sum", "count", "correct", "tokens")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.sums)

    def add(self, stats: Stats) -> None:
        for key in self.KEYS:
            if key in stats:
                value = torch.as_tensor(stats[key], dtype=torch.float64, device=self.device).detach()
                self.sums[key] = self.sums[key] + value if key in self.sums else value

    def reduce(self, dist: ddp.DistInfo) -> dict[str, float]:
        keys = sorted(self.sums)
        if not keys:
            return {}
        vec = ddp.all_reduce_sum(torch.stack([self.sums[k] for k in keys]), dist)
        return dict(zip(keys, vec.tolist()))


def evaluate(model: nn.Module, loss_fn: LossFn, batches: Batches, *, device: torch.device | None = None,
             autocast_dtype: torch.dtype | None = None, perplexity: bool = False, prefix: str = "val_",
             seed: int = 0, dist: ddp.DistInfo | None = None) -> dict[str, float]:
    """Mean loss (and accuracy / perplexity) of ``model`` over ``batches``, without gradients.

    Returns ``{prefix}loss`` and, when the loss reports ``correct``, ``{prefix}accuracy``; with
    ``perplexity``, ``{prefix}perplexity``. Under DDP each process evaluates its shard and the
    sums are combined.
    """
    dist = dist or ddp.DistInfo()
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = StatSums(device)
    try:
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            for batch in batches.iter_epoch(0, seed, dist.rank, dist.world):
                _, stats = loss_fn(model, move_to(batch, device))
                sums.add(stats)
    finally:
        model.train(was_training)
    return summarize(sums.reduce(dist), prefix, perplexity)
