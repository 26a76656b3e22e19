"""Learning-rate schedule (linear warm-up, then cosine decay) and the AdamW parameter groups."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from attnlab.engine.flat_adamw import FlatAdamW, shared_parameters

# Modules whose weights are linear maps: AdamW decays these (timm's rule). Everything else --
# biases, norm scales, position tables, class tokens, any bare nn.Parameter -- is left alone.
DECAYED_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase)


def param_groups(model: nn.Module, weight_decay: float, *, decay_embeddings: bool = False) -> list[dict[str, Any]]:
    """Two AdamW groups, decided by module type: ``weight_decay`` for the weight matrices of
    ``nn.Linear``, ``nn.Conv*d`` and RNN layers, none for everything else.

    ``nn.Embedding`` tables are decayed only with ``decay_embeddings`` (nanoGPT's rule). This
    matters when the output layer is tied to the token table (a parameter shared by an
    embedding and a linear layer counts as an embedding), because the decay then also bounds the
    logits. A model can exempt more by name with ``no_weight_decay()`` (the timm convention).
    """
    exempt = getattr(model, "no_weight_decay", None)
    skip: set[str] = set(exempt()) if callable(exempt) else set()
    embeddings: set[int] = set()
    matrices: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            embeddings.add(id(module.weight))
        elif isinstance(module, DECAYED_MODULES):
            matrices.update(id(p) for p in module.parameters(recurse=False) if p.ndim >= 2)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        decayed = decay_embeddings if id(p) in embeddings else id(p) in matrices
        (decay if decayed and name not in skip else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, *, decay_embeddings: bool = False,
                   beta2: float = 0.95) -> FlatAdamW:
    """AdamW over :func:`param_groups`, betas (0.9, ``beta2``): 0.95 as in GPT-style training.

    It is :class:`~attnlab.engine.flat_adamw.FlatAdamW`: torch's AdamW, bit for bit, in fewer
    calls. Make it after the model has moved to its device: the parameters of a group of small
    tensors become views of one buffer (:meth:`FlatAdamW.release` gives them their own storage
    back)."""
    return FlatAdamW(param_groups(model, weight_decay, decay_embeddings=decay_embeddings),
                     keep_apart=shared_parameters(model), lr=lr, betas=(0.9, beta2))


class WarmupCosine:
    """lr(step) = lr * factor: linear warm-up over ``warmup_steps``, then cosine to ``min_lr_ratio``
    at ``total_steps``. It depends on the step alone, never on the clock, so the same command
    trains the same model on any machine."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, lr: float, total_steps: int,
                 warmup_steps: int, min_lr_ratio: float) -> None:
        self.optimizer, self.lr = optimizer, lr
        self.total_steps, self.warmup_steps = max(1, total_steps), max(0, warmup_steps)
        self.min_lr_ratio = min_lr_ratio
        self.step_count, self.last_lr = 0, lr

    def factor(self, step: int) -> float:
        """The multiplier for optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine

    def apply(self, step: int) -> float:
        """Set the learning rate of every param group for step ``step``; returns it."""
        self.step_count = step
        self.last_lr = self.lr * self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.last_lr
        return self.last_lr

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "last_lr": self.last_lr, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count, self.last_lr = int(state["step_count"]), float(state["last_lr"])
