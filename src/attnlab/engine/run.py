"""`TrainingRun`: what one call of :func:`attnlab.engine.fit` holds, and its steps as methods.

:func:`attnlab.engine.fit` is the loop; this object is everything the loop touches: the model
(and its DDP wrapper), the optimizer, the learning-rate schedule, the gradient scaler, the
weight average, the logger and :class:`~attnlab.engine.state.TrainState`, where training stands.
Each step of the loop is one named method: :meth:`start`, :meth:`optimizer_step`,
:meth:`log_train`, :meth:`check_limits`, :meth:`evaluate_and_checkpoint`, :meth:`save` and
:meth:`finish`. The console and the clocks are :class:`~attnlab.engine.progress.Progress`;
resuming is :mod:`attnlab.engine.resume` (``fit`` calls its ``restore`` before :meth:`start`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab import allocator
from attnlab.data.batching import Batches
from attnlab.device import (
    autocast_context,
    make_grad_scaler,
    model_flops_utilization,
    resolve_precision,
    training_device,
)
from attnlab.engine import distributed as ddp
from attnlab.engine.checkpoint import load_checkpoint, save_checkpoint
from attnlab.engine.config import TrainConfig, monitor_mode
from attnlab.engine.ema import ModelEMA
from attnlab.engine.evaluate import LossFn, StatSums, check_monitor, evaluate, require_monitor
from attnlab.engine.logging import RunLogger
from attnlab.engine.progress import Progress
from attnlab.engine.resume import resume_state
from attnlab.engine.rng import preserved_rng, seed_everything
from attnlab.engine.rundir import refuse_restart
from attnlab.engine.schedule import WarmupCosine, make_optimizer
from attnlab.engine.state import TrainState
from attnlab.errors import AttnlabError
from attnlab.files import write_json
from attnlab.threads import NeighbourNotice, apply_threads

__all__ = ["TrainState", "TrainingRun", "OnEval"]

OnEval = Callable[[nn.Module, dict[str, float]], Any]  # called after each validation with its metrics


class TrainingRun:
    """One training run of :func:`attnlab.engine.fit` (see its docstring for the arguments)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_batches: Batches, val_batches: Batches | None,
                 cfg: TrainConfig, run_dir: str | Path, *, meta: dict[str, Any] | None = None,
                 resume: bool | str | Path = False, perplexity: bool = False, on_eval: OnEval | None = None,
                 tensorboard: bool = True) -> None:
        self.model, self.loss_fn, self.cfg, self.run_dir = model, loss_fn, cfg, Path(run_dir)
        self.train_batches, self.val_batches = train_batches, val_batches
        self.perplexity, self.on_eval = perplexity, on_eval
        self.mode = monitor_mode(cfg.monitor)
        self.device = training_device(cfg.device)
        self.dist = ddp.init_distributed(self.device.type)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.steps_per_epoch = math.ceil(len(train_batches) / cfg.grad_accum)
        if self.steps_per_epoch == 0:
            raise AttnlabError("the training set yields no batches; check the data (or lower train.batch_size)")
        self.total_steps = int(min(cfg.epochs * self.steps_per_epoch, cfg.max_steps or math.inf))
        refuse_restart(self.run_dir, bool(resume))
        self.meta = {**(meta or {}), "train": asdict(cfg)}
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)

        model.to(self.device)
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, decay_embeddings=cfg.decay_embeddings,
                                        beta2=cfg.beta2)
        self.schedule = WarmupCosine(self.optimizer, lr=cfg.lr, total_steps=self.total_steps,
                                     warmup_steps=cfg.warmup_steps, min_lr_ratio=cfg.min_lr_ratio)
        self.scaler = make_grad_scaler(self.device, self.precision.use_scaler)
        self.ema = ModelEMA(model, cfg.ema) if cfg.ema else None
        self.state = TrainState()
        seed_everything(cfg.seed + self.dist.rank)  # dropout and the like; the model is already built
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, tensorboard=tensorboard)
        self.progress = Progress(self.total_steps, time_limit=cfg.time_limit, enabled=self.dist.is_main)
        # What the loss function calls: compiled and/or DDP-wrapped. Checkpoints, evaluation and the
        # weight average use `model` itself, so saved weights never carry a wrapper's prefix.
        self.net: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.train_sums = StatSums(self.device)  # training statistics since the last log line
        self.saved_at: tuple[int, int, int] | None = None  # the position of the last checkpoint
        self.stop_reason: str | None = None

    # ----------------------------------------------------------------- starting
    def start(self, progress: bool | None) -> None:
        """Say what the run will do, start the clock and the progress (``fit(progress=...)``); a
        finished or early-stopped run stops at once."""
        state, cfg = self.state, self.cfg
        self.progress.start(state.step, state.train_seconds, show=progress)
        cap = f", time cap {cfg.time_limit:g} s" if cfg.time_limit else ", no time cap"
        steps = (f"training {self.total_steps} steps" if state.step == 0 else
                 f"resuming at step {state.step} of {self.total_steps}")
        self.progress.note(f"{steps} (at most {cfg.epochs} epochs of {self.steps_per_epoch} steps){cap} on "
                           f"{self.device} ({self.precision.name}), {self.dist.world} process(es); "
                           f"run directory {self.run_dir}")
        if self.device.type == "cpu":  # the thread policy (attnlab.threads), said in the log
            trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            threads = apply_threads(trainable)
            self.progress.note(threads.note())
            if self.dist.world == 1:  # (processes of one DDP run would take each other for neighbours)
                self.progress.neighbours = NeighbourNotice(threads.threads)
            memory = allocator.note()
            if memory:
                self.progress.note(f"memory: {memory}")
        if self.val_batches is not None:
            check_monitor(cfg.monitor, self.model, self.loss_fn, self.val_batches, device=self.device,
                          autocast_dtype=self.precision.autocast_dtype, perplexity=self.perplexity, seed=cfg.seed,
                          dist=self.dist)
        # Every check passed: forget what an interrupted run logged past its checkpoint (a run
        # stopped before its first checkpoint starts its log afresh).
        self.logger.truncate_after(state.step)
        if self.dist.is_main and "config" in self.meta:  # written once the run has really started
            write_json(self.run_dir / "config.json", self.meta["config"])
        if state.step >= self.total_steps:
            self.stop_reason = "done"
        elif state.best.out_of_patience(cfg.patience):
            self.stop_reason = "early_stopping"

    # ----------------------------------------------------------------- one step
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast_context(self.device, self.precision.autocast_dtype)

    def gradient_sync(self, ends_step: bool) -> contextlib.AbstractContextManager[Any]:
        """Under DDP, skip the gradient all-reduce for micro-batches inside an accumulation group."""
        if self.dist.enabled and not ends_step:
            return self.net.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def optimizer_step(self, position: tuple[int, int]) -> None:
        """One AdamW step on the accumulated gradients, with the scheduled learning rate and
        gradient clipping; then the weight average (if any) takes in the new weights, and the state
        records the step and ``position``, where the data stands after it (epoch, batch_in_epoch)."""
        self.schedule.apply(self.state.step)
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        self.state.step += 1
        self.state.epoch, self.state.batch_in_epoch = position
        self.state.train_seconds = self.progress.elapsed()
        self.progress.stepped(self.state.step)

    def check_limits(self) -> None:
        """Stop at ``max_steps`` (or the end of the epochs) and at ``time_limit`` (rank 0's clock
        decides for every DDP process, so they stay in step)."""
        out_of_time = self.cfg.time_limit is not None and self.state.train_seconds >= self.cfg.time_limit
        if self.cfg.time_limit is not None and self.dist.enabled:
            out_of_time = ddp.broadcast_flag(out_of_time, self.dist, self.device)
        if out_of_time:
            self.stop_reason = "time_limit"
            self.progress.note(f"time limit reached: train.time_limit={self.cfg.time_limit:g} s stopped the run "
                               f"after {self.state.step} of {self.total_steps} steps")
        elif self.state.step >= self.total_steps:
            self.stop_reason = "max_steps"

    def log_train(self) -> None:
        """Log the mean training loss, the learning rate and the throughput since the last log
        line (tokens/s or examples/s); also the model-FLOPs utilisation when the model states its
        FLOPs per token and the device's peak is known (a GPU's, or the CPU's from `bench peak`)."""
        if not self.train_sums:
            return
        sums = self.train_sums.reduce(self.dist)
        loss = sums["loss_sum"] / max(sums.get("count", 0.0), 1e-12)
        if not math.isfinite(loss):
            raise _diverged("train", loss, self.state.step)
        unit, rate = self.progress.throughput(sums)
        record = {"train_loss": loss, "lr": self.schedule.last_lr, f"{unit}_per_sec": rate}
        mfu = model_flops_utilization(self.model, rate, self.device, self.precision) if unit == "tokens" else None
        if mfu is not None:
            record["mfu"] = mfu
        self.state.last_train_loss = loss
        self.logger.log(self.state.step, record, epoch=self.epochs_done())
        self.progress.trained(self.state.step, loss, unit, rate)
        self.train_sums = StatSums(self.device)
        self.progress.open_window()

    # ----------------------------------------------------------------- validation and checkpoints
    def averaged(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which the model holds the weight average (a no-op without one)."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def evaluate_and_checkpoint(self) -> None:
        """Validate (the weight average, if any), remember the best weights, write the ``latest``
        (and, if improved, ``best``) checkpoint, call ``on_eval``; stop early when patience runs out."""
        assert self.val_batches is not None
        self.log_train()  # train-loss windows end at evaluations, so a resumed run logs the same numbers
        state = self.state
        with self.averaged():
            with preserved_rng():
                metrics = evaluate(self.model, self.loss_fn, self.val_batches, device=self.device,
                                   autocast_dtype=self.precision.autocast_dtype, perplexity=self.perplexity,
                                   seed=self.cfg.seed, dist=self.dist)
            require_monitor(self.cfg.monitor, list(metrics))
            if not math.isfinite(metrics["val_loss"]):
                raise _diverged("validation", metrics["val_loss"], state.step)
            state.last_eval_step = state.step
            improved = state.best.update(metrics, state.step, monitor=self.cfg.monitor, mode=self.mode,
                                         model=self.model)
            self.logger.log(state.step, metrics, epoch=self.epochs_done(),
                            train_seconds=round(self.progress.elapsed(), 3))
            self.save(("latest", "best") if improved else ("latest",))
            if self.on_eval is not None and self.dist.is_main:
                self.model.eval()
                with preserved_rng(), torch.no_grad(), self.progress.writing():
                    self.on_eval(self.model, {**metrics, "step": state.step})
                self.model.train()
        if state.best.out_of_patience(self.cfg.patience):
            self.stop_reason = self.stop_reason or "early_stopping"
        self.progress.open_window()  # throughput counts training time only

    def save(self, tags: tuple[str, ...]) -> None:
        """Write a checkpoint (rank 0 writes): the model (the average, if any) and ``training.pt``
        with everything :func:`attnlab.engine.resume.restore` needs."""
        self.saved_at = self.state.position()
        training = resume_state(self)  # gathers every process's random streams: all ranks call it
        if training is not None:
            with self.averaged():
                save_checkpoint(self.run_dir, self.model, meta={**self.meta, "epoch": self.state.epoch},
                                training=training, step=self.state.step, tags=tags, keep_last=self.cfg.keep_last)
        ddp.barrier(self.dist)

    # ----------------------------------------------------------------- the end
    def finish(self) -> dict[str, float]:
        """The last log line, a final validation (or checkpoint), and the final metrics.

        The model is left holding the BEST weights when there is validation, else the last ones
        (the weight average, if any). Returns the best evaluation's validation metrics plus
        ``train_loss``, ``train_seconds``, ``steps``, ``epochs``, ``best_step``, ``stopped_early``.
        """
        state, best = self.state, self.state.best
        self.log_train()
        state.train_seconds = self.progress.elapsed()
        if self.val_batches is not None and state.last_eval_step != state.step:
            self.evaluate_and_checkpoint()
        elif self.saved_at != state.position():
            self.save(("latest",))
        final: dict[str, float] = {}
        if self.ema is not None:
            self.ema.copy_to_model()
        if self.val_batches is not None:
            if best.weights is not None:
                self.model.load_state_dict(best.weights)
            elif best.step >= 0:  # resumed: the best weights are on disk
                load_checkpoint(self.run_dir, which="best").load_into(self.model)
            final.update(best.metrics)
        if state.last_train_loss is not None:
            final["train_loss"] = state.last_train_loss
        final.update({"train_seconds": round(state.train_seconds, 3), "steps": state.step,
                      "epochs": self.epochs_done(), "best_step": best.step,
                      "stopped_early": float(self.stop_reason == "early_stopping"),
                      "time_limit_reached": float(self.stop_reason == "time_limit"), "world_size": self.dist.world})
        return final

    def close(self) -> None:
        """Close the progress bar, the logger and (if this run created it) the process group; the
        parameters get their own storage back (:meth:`FlatAdamW.release`)."""
        self.optimizer.release()
        self.progress.close()
        self.logger.close()
        ddp.shutdown(self.dist)

    # ----------------------------------------------------------------- small helpers
    def epochs_done(self) -> float:
        return self.state.epochs_done(len(self.train_batches))



def _diverged(what: str, value: float, step: int) -> AttnlabError:
    return AttnlabError(f"training diverged: the {what} loss is {value} at step {step}; lower the learning rate "
                        "(--set train.lr=...) or use --set train.precision=fp32")
