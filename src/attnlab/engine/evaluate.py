"""`evaluate`: a model's mean loss (and accuracy / perplexity) over a set of batches,
`StatSums`, the running sums behind it (and behind the logged training loss), and
`check_monitor`, which makes sure before training that validation will report ``train.monitor``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attnlab.data.batching import Batches
from attnlab.device import autocast_context, move_to
from attnlab.engine import distributed as ddp
from attnlab.engine.rng import preserved_rng
from attnlab.errors import AttnlabError
from attnlab.losses import Stats
from attnlab.metrics import summarize

__all__ = ["LossFn", "StatSums", "evaluate", "check_monitor", "require_monitor"]

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


def check_monitor(monitor: str, model: nn.Module, loss_fn: LossFn, batches: Batches, *, device: torch.device,
                  autocast_dtype: torch.dtype | None, perplexity: bool, seed: int, dist: ddp.DistInfo) -> None:
    """Fail before training, not after the first epoch, when ``monitor`` names a metric validation
    will not produce: one validation batch shows which statistics the loss reports (the random
    streams are left as they were)."""
    batch = next(iter(batches.iter_epoch(0, seed, dist.rank, dist.world)), None)
    if batch is None:
        return
    model.eval()
    with torch.no_grad(), preserved_rng(), autocast_context(device, autocast_dtype):
        _, stats = loss_fn(model, move_to(batch, device))
    model.train()
    sums = StatSums(device)
    sums.add(stats)
    require_monitor(monitor, list(summarize({**sums.reduce(ddp.DistInfo()), "count": 1.0}, "val_", perplexity)))


def require_monitor(monitor: str, names: list[str]) -> None:
    if monitor not in names:
        raise AttnlabError(f"train.monitor '{monitor}' is not among the validation metrics ({', '.join(names)}); "
                           "set --set train.monitor=<one of them>")
