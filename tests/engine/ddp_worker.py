"""Run by test_ddp.py, alone or as one of several DDP processes: train the tiny model, save it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch

from attnlab.data.batching import TensorBatches
from attnlab.engine import fit


def _engine_conftest():
    """This folder's conftest, by its path (under pytest another folder's conftest may own the name)."""
    spec = importlib.util.spec_from_file_location("engine_conftest", Path(__file__).with_name("conftest.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_c = _engine_conftest()
TinyNet, tiny_cfg, tiny_data, tiny_loss = _c.TinyNet, _c.tiny_cfg, _c.tiny_data, _c.tiny_loss


def train(out: Path, *, dropout: float = 0.0, max_steps: int = 10, resume: bool | Path = False) -> dict[str, float]:
    """``max_steps`` steps with global batch 8 (4 examples per process under 2 ranks); saves params
    on each rank."""
    torch.manual_seed(0)
    model = TinyNet(dropout=dropout)
    train_batches = TensorBatches(tiny_data(48), 8)
    val = TensorBatches(tiny_data(16, seed=1), 8, shuffle=False)
    cfg = tiny_cfg(epochs=2, max_steps=max_steps, grad_clip=0.5, eval_every=5, keep_last=5)
    metrics = fit(model, tiny_loss, train_batches, val, cfg, out / "run", meta={"task": "unit"}, progress=False,
                  tensorboard=False, resume=resume)
    rank = os.environ.get("RANK", "0")
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"params{rank}.pt")
    torch.save({k: float(v) for k, v in metrics.items()}, out / f"metrics{rank}.pt")
    return metrics


if __name__ == "__main__":
    torch.set_num_threads(1)
    # argv: OUT [DROPOUT [RESUME_FROM_CHECKPOINT]]
    extra = sys.argv[2:]
    train(Path(sys.argv[1]), dropout=float(extra[0]) if extra else 0.0, resume=Path(extra[1]) if extra[1:] else False)
