"""`TrainConfig`: every knob of the training engine, shared by all tasks (``--set train.X=...``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    """Settings of :func:`attnlab.engine.fit`. A task's config holds one as its ``train`` field."""

    epochs: int = 10  # passes over the training batches
    max_steps: int | None = None  # stop after this many optimizer steps (None: epochs decide)
    time_limit: float | None = None  # seconds in total (across resumes); stop cleanly, schedule follows the clock
    batch_size: int = 64  # GLOBAL batch (split across DDP processes)
    lr: float = 1e-3  # peak learning rate (after warm-up)
    weight_decay: float = 0.1  # AdamW decay, applied to matrices only (not embeddings/norms/biases)
    decay_embeddings: bool = False  # decay the nn.Embedding tables too (bounds tied output logits)
    warmup_steps: int = 100  # linear warm-up from lr/warmup_steps to lr
    min_lr_ratio: float = 0.1  # cosine decay ends at min_lr_ratio * lr
    grad_clip: float | None = 1.0  # clip the global gradient norm (None: no clipping)
    grad_accum: int = 1  # micro-batches per optimizer step
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # see engine.device
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: CUDA, then MPS, then CPU
    seed: int = 0
    eval_every: int | None = None  # validate every N optimizer steps (None: after each epoch)
    patience: int | None = None  # early stop after N evaluations without improvement
    monitor: str = "val_loss"  # minimised if it ends in loss/perplexity, maximised for accuracy
    log_every: int = 10  # optimizer steps between train-loss log lines
    ema: float | None = None  # decay of a running average of the weights that validation and
    # checkpoints use (e.g. 0.999: about the last 1,000 steps; None: off). See engine.ema
