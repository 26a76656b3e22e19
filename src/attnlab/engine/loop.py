"""`fit`: the one training loop every task uses.

The loop reads like nanoGPT's: for each micro-batch, forward and backward; at the end of an
accumulation group, an optimizer step; then logging, limits and validation when they are due.
Everything the loop touches lives in a :class:`attnlab.engine.run.TrainingRun`, whose methods
are the named steps; :func:`attnlab.engine.resume.restore` puts it back where a checkpoint left
it; :func:`micro_batches` yields the data, each micro-batch with its position, which the
optimizer step records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from attnlab.config import validate
from attnlab.data.batching import Batches
from attnlab.device import move_to
from attnlab.engine.config import TrainConfig
from attnlab.engine.evaluate import LossFn
from attnlab.engine.resume import restore
from attnlab.engine.run import TrainingRun

__all__ = ["fit", "MicroBatch", "micro_batches"]


class MicroBatch(NamedTuple):
    batch: Any
    group_size: int  # micro-batches in this optimizer step (each loss is divided by it)
    ends_step: bool  # the last micro-batch of an optimizer step
    ends_epoch: bool  # the last micro-batch of the epoch
    epoch: int  # the epoch it belongs to
    index_in_epoch: int  # its place among that epoch's batches (0: the first)

    @property
    def next_position(self) -> tuple[int, int]:
        """(epoch, batch_in_epoch) just after this micro-batch: where a run resumes once the step
        it ends is taken (after the last one of an epoch: the next epoch, batch 0)."""
        return (self.epoch + 1, 0) if self.ends_epoch else (self.epoch, self.index_in_epoch + 1)


def micro_batches(batches: Batches, cfg: TrainConfig, start: tuple[int, int] = (0, 0), rank: int = 0,
                  world: int = 1) -> Iterator[MicroBatch]:
    """The training micro-batches from ``start`` (epoch, batch_in_epoch) to the end of the last epoch.

    Groups of ``cfg.grad_accum`` micro-batches make one optimizer step; the last group of an
    epoch may be shorter. Resuming, the epoch is replayed from its seed and the micro-batches
    the checkpoint already trained on are skipped. Each micro-batch carries its position; the
    loop records it in the state when it takes the step (iterating changes nothing). It looks
    one micro-batch ahead, so it knows which one ends the epoch even when the data yields fewer
    batches than ``len()``; that last group is then cut short while its losses were divided by
    the planned group size, so its step is proportionally smaller (no batching in attnlab does
    this; a custom :class:`Batches` might).
    """
    n = len(batches)
    first_epoch, first_index = start
    for epoch in range(first_epoch, cfg.epochs):
        index = first_index if epoch == first_epoch else 0
        if index >= n:  # a checkpoint written at the very end of this epoch
            continue
        it = iter(batches.iter_epoch(epoch, cfg.seed, rank, world))
        for _ in range(index):  # already trained on
            next(it, None)
        in_group, group = 0, 1
        upcoming = next(it, None)
        while upcoming is not None:
            batch, upcoming = upcoming, next(it, None)
            if in_group == 0:
                group = max(1, min(cfg.grad_accum, n - index))
            in_group += 1
            ends_epoch = upcoming is None
            ends_step = in_group >= group or ends_epoch
            yield MicroBatch(batch, group, ends_step, ends_epoch, epoch, index)
            if ends_step:
                in_group = 0
            index += 1


def fit(model: nn.Module, loss_fn: LossFn, train_batches: Batches, val_batches: Batches | None,
        cfg: TrainConfig, run_dir: str | Path, *, meta: dict[str, Any] | None = None,
        resume: bool | str | Path = False, perplexity: bool = False,
        on_eval: Callable[[nn.Module, dict[str, float]], Any] | None = None, progress: bool | None = None,
        tensorboard: bool = True, allow_changed_data: bool = False) -> dict[str, float]:
    """Train ``model`` with AdamW, warm-up + cosine, clipping, accumulation, autocast and checkpoints.

    ``loss_fn(model, batch) -> (loss, stats)``: the mean loss to back-propagate and a dict of
    sums (``loss_sum``, ``count`` and optionally ``correct``; :mod:`attnlab.losses`). ``model``
    may arrive wrapped in DDP, so ``loss_fn`` calls ``model(...)``. Validation runs every
    ``cfg.eval_every`` steps (or once per epoch) and at the end; each validation writes the
    ``latest`` checkpoint and, when ``cfg.monitor`` improved, the ``best`` one.
    ``on_eval(model, metrics)`` is called on the main process after each validation, with the
    model in eval mode and the RNG state preserved (sampling there does not break resume).

    With ``resume=True`` training continues from ``run_dir``'s latest checkpoint exactly where
    it stopped (bit-identical in fp32 when no ``time_limit`` is set); the files named in
    ``meta["inputs"]`` must have the checksums they had (unless ``allow_changed_data``).
    ``resume`` may also name an earlier checkpoint of the run to continue from instead of its
    latest (:mod:`attnlab.engine.resume`). Launched by ``torchrun``, the model is wrapped in
    DistributedDataParallel and only rank 0 writes files. With ``cfg.ema`` set, validation,
    ``on_eval``, the checkpoints' weights and the returned model use the running average of the
    weights (:mod:`attnlab.engine.ema`).

    Returns the validation metrics of the BEST evaluation (``val_loss``, ``val_accuracy``,
    ``val_perplexity`` with ``perplexity``) plus ``train_loss``, ``train_seconds``, ``steps``,
    ``epochs``, ``best_step``, ``stopped_early``, and leaves ``model`` holding the best weights.
    """
    validate(cfg, prefix="train.")
    run = TrainingRun(model, loss_fn, train_batches, val_batches, cfg, run_dir, meta=meta, resume=resume,
                      perplexity=perplexity, on_eval=on_eval, tensorboard=tensorboard)
    try:
        if resume:
            restore(run, resume, allow_changed_data=allow_changed_data)
        run.start(progress)
        model.train()
        start = (run.state.epoch, run.state.batch_in_epoch)
        data = micro_batches(train_batches, cfg, start, run.dist.rank, run.dist.world)
        for mb in (data if run.stop_reason is None else ()):
            with run.gradient_sync(mb.ends_step):
                with run.autocast():
                    loss, stats = loss_fn(run.net, move_to(mb.batch, run.device))
                run.scaler.scale(loss / mb.group_size).backward()
            run.train_sums.add(stats)
            if not mb.ends_step:
                continue
            run.optimizer_step(mb.next_position)
            if run.state.step % cfg.log_every == 0:
                run.log_train()
            run.check_limits()
            every = cfg.eval_every
            if val_batches is not None and (run.state.step % every == 0 if every else mb.ends_epoch):
                run.evaluate_and_checkpoint()
            if run.stop_reason is not None:
                break
        return run.finish()
    finally:
        run.close()
