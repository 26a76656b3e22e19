"""The one harness of the "ours vs Hugging Face" training benchmarks (``attnlab bench gpt|vit``).

Each benchmark builds the two models at identical shapes and a random batch, and gives each
model's loss on that batch as a function; :func:`compare_training` does the rest the same way for
both: AdamW (same settings), train mode, one timed step = forward + loss (under the device's
autocast, :func:`attnlab.device.autocast_for`) + backward + optimizer step, interleaved rounds
(:mod:`attnlab.measure`) and their medians, peak memory, then one table: parameters (which must
match), ms per step, throughput, peak MiB, and the ratio ours / Hugging Face against its bar of 1
(``MISSED`` when below), with the load average before and after.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.bench._common import bar_verdict, report_load
from attnlab.device import autocast_for, describe_device
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, peak_bytes, time_interleaved
from attnlab.memory import count_parameters

RATIO_BAR = 1.0  # ours must train at least as fast as Hugging Face

__all__ = ["Contender", "compare_training", "training_step", "transformers_or_error"]


@dataclass
class Contender:
    """One side of the comparison: its name in the table, its model, and its loss on the batch."""

    name: str
    model: nn.Module
    loss: Callable[[], Tensor]  # the model's native loss on the shared batch (called under autocast)


def transformers_or_error(benchmark: str) -> Any:
    """Hugging Face ``transformers``, or one clear error naming ``attnlab bench BENCHMARK``."""
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise AttnlabError(
            f"`attnlab bench {benchmark}` needs Hugging Face transformers; install it with "
            "`pip install -e '.[bench]'` (or `pip install transformers`)"
        ) from None


def training_step(c: Contender, device: torch.device) -> Callable[[], None]:
    """One AdamW training step of ``c`` (its model put in train mode)."""
    optimizer = torch.optim.AdamW(c.model.parameters(), lr=1e-4)
    c.model.train()

    def step() -> None:
        with autocast_for(device):
            loss = c.loss()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def compare_training(ours: Contender, theirs: Contender, *, device: torch.device, repeats: int, what: str,
                     per_step: float, unit: str, rate_format: str, name_width: int) -> None:
    """Time a training step of both models and print the table.

    ``what`` describes the step and the shapes (the title; the device and the repeats are added),
    ``per_step`` is the number of ``unit`` (tokens, images) one step trains on, ``rate_format``
    the format of that rate (``",.0f"``), ``name_width`` the width of the model column.
    """
    load = LoadWatch.start()
    counts = {c.name: count_parameters(c.model) for c in (ours, theirs)}
    steps: dict[str, Callable[[], object]] = {c.name: training_step(c, device) for c in (ours, theirs)}
    samples = time_interleaved(steps, repeats=repeats, warmup=2, device=device)
    peak = {name: peak_bytes(step, device) / 2**20 for name, step in steps.items()}
    rate = {name: per_step / median(s) for name, s in samples.items()}
    print(f"{what}, {describe_device(device)}, median of {repeats}")
    print(f"{'model':<{name_width}} {'params':>12} {'ms/step':>9} {unit + '/s':>10} {'peak MiB':>9}")
    for name, s in samples.items():
        print(f"{name:<{name_width}} {counts[name]:>12,} {1000 * median(s):>9.1f} {rate[name]:>10{rate_format}} "
              f"{peak[name]:>9.1f}")
    print(bar_verdict(f"ratio ours/HF {unit}/s", rate[ours.name] / rate[theirs.name], RATIO_BAR, unit="",
                      digits=3))
    if counts[ours.name] != counts[theirs.name]:
        print(f"warning: parameter counts differ ({counts[ours.name]} vs {counts[theirs.name]})")
    report_load(load)
