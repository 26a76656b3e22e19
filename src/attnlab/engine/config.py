"""`TrainConfig`: every knob of the training engine, shared by all tasks (``--set train.X=...``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from attnlab.config import Count, NonNegative, Range, Seed
from attnlab.errors import AttnlabError

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = get_args(Device)  # the choices of every --device option

__all__ = ["TrainConfig", "monitor_mode"]


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """``min`` for ``*loss``/``*perplexity``, ``max`` for ``*accuracy``."""
    if monitor.endswith(("loss", "perplexity")):
        return "min"
    if monitor.endswith("accuracy"):
        return "max"
    raise AttnlabError(f"cannot tell whether monitor '{monitor}' should go up or down; use a name "
                       "ending in loss, perplexity or accuracy (e.g. --set train.monitor=val_accuracy)")


@dataclass
class TrainConfig:
    """Settings of :func:`attnlab.engine.fit`. A task's config holds one as its ``train`` field."""

    epochs: Count = 10  # passes over the training batches
    max_steps: Count | None = None  # stop after this many optimizer steps (None: epochs decide)
    time_limit: Annotated[float, Range(gt=0)] | None = None  # a safety cap: stop cleanly after this many
    # seconds of training in total (across resumes); the run says so. The schedule never follows it
    batch_size: Count = 64  # GLOBAL batch (split across DDP processes)
    lr: Annotated[float, Range(gt=0)] = 1e-3  # peak learning rate (after warm-up)
    beta2: Annotated[float, Range(gt=0, lt=1)] = 0.95  # AdamW's second-moment decay (beta1 is 0.9)
    weight_decay: Annotated[float, Range(ge=0)] = 0.1  # AdamW decay of the weight matrices (engine.schedule)
    decay_embeddings: bool = False  # decay the nn.Embedding tables too (bounds tied output logits)
    warmup_steps: NonNegative = 100  # linear warm-up from lr/warmup_steps to lr
    min_lr_ratio: Annotated[float, Range(ge=0, le=1)] = 0.1  # cosine decay ends at min_lr_ratio * lr
    grad_clip: Annotated[float, Range(gt=0)] | None = 1.0  # clip the global gradient norm (None: off)
    grad_accum: Annotated[int, Range(ge=1, le=4096)] = 1  # micro-batches per optimizer step
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # see attnlab.device
    device: Device = "auto"  # auto: CUDA, then MPS, then CPU
    compile: bool = False  # torch.compile the training forward/backward (faster on a GPU; needs a C++
    # compiler on the CPU). Checkpoints are the same either way; --resume works across the switch
    seed: Seed = 0  # model initialisation, batch order, dropout
    eval_every: Count | None = None  # validate every N optimizer steps (None: after each epoch)
    patience: Count | None = None  # early stop after N evaluations without improvement
    monitor: str = "val_loss"  # minimised if it ends in loss/perplexity, maximised for accuracy
    log_every: Count = 10  # optimizer steps between train-loss log lines
    keep_last: NonNegative = 0  # also keep the last N step checkpoints (for --resume-from), not only
    # `latest` and `best`
    ema: Annotated[float, Range(gt=0, lt=1)] | None = None  # decay of a running average of the
    # weights that validation and checkpoints use (e.g. 0.999: about the last 1,000 steps; None: off)

    def check(self) -> None:
        """Rules across fields (run by :func:`attnlab.config.validate`)."""
        monitor_mode(self.monitor)
