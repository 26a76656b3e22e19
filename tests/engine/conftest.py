"""Shared pieces of the engine tests: a tiny classifier, its data and loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.data.batching import TensorBatches
from attnlab.engine import TrainConfig


class TinyNet(nn.Module):
    """Embedding -> mean -> Linear -> dropout -> LayerNorm -> Linear (3 classes)."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 16)
        self.hidden = nn.Linear(16, 16)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(16)
        self.out = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).mean(1)  # (B, 16)
        return self.out(self.norm(self.drop(torch.relu(self.hidden(x)))))


def tiny_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
    logits = model(batch["x"])
    loss = F.cross_entropy(logits, batch["y"])
    return loss, {"loss_sum": loss.detach() * len(batch["y"]), "count": len(batch["y"]),
                  "correct": (logits.argmax(-1) == batch["y"]).sum()}


def tiny_data(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (n, 4), generator=g)
    return {"x": x, "y": x[:, 0] % 3}


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=8, lr=1e-2, warmup_steps=2, precision="fp32", device="cpu",
                log_every=1, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def train_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "train_loss" in rec:
            out[rec["step"]] = rec["train_loss"]
    return out


class Interrupt:
    """A loss function that raises KeyboardInterrupt (a user's Ctrl-C) on its n-th training call."""

    def __init__(self, loss_fn, at_call: int) -> None:
        self.loss_fn, self.at_call, self.calls = loss_fn, at_call, 0

    def __call__(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.at_call:
                raise KeyboardInterrupt(f"interrupted at training call {self.at_call}")
        return self.loss_fn(model, batch)


@pytest.fixture
def tiny():
    """Factories for the tiny set-up (model, loss, data, config, an interrupting loss)."""
    return type("Tiny", (), {"net": TinyNet, "loss": staticmethod(tiny_loss), "data": staticmethod(tiny_data),
                             "cfg": staticmethod(tiny_cfg), "batches": TensorBatches,
                             "train_losses": staticmethod(train_losses), "interrupt": Interrupt})
