"""`fit`: the one training loop every task uses, and `evaluate` for validation/test sets."""

from __future__ import annotations

import contextlib
import inspect
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from attnlab.engine import distributed as ddp
from attnlab.engine.batches import Batches
from attnlab.engine.checkpoint import (CHECKPOINTS, load_checkpoint, rng_state, save_checkpoint,
                                       set_rng_state, unwrap)
from attnlab.engine.config import TrainConfig
from attnlab.engine.device import (autocast_context, make_grad_scaler, move_to, resolve_precision,
                                   select_device)
from attnlab.engine.ema import ModelEMA
from attnlab.engine.logging import RunLogger
from attnlab.engine.schedule import WarmupCosine, make_optimizer
from attnlab.errors import AttnlabError

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, Any]]"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Call before building the model."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def monitor_mode(monitor: str) -> str:
    """``min`` for ``*loss``/``*perplexity``, ``max`` for ``*accuracy``."""
    if monitor.endswith(("loss", "perplexity")):
        return "min"
    if monitor.endswith("accuracy"):
        return "max"
    raise AttnlabError(f"cannot tell whether monitor '{monitor}' should go up or down; use a name "
                       "ending in loss, perplexity or accuracy (e.g. --set train.monitor=val_accuracy)")


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, sampling callbacks) without disturbing the training RNG streams."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _add_stats(acc: dict[str, torch.Tensor], stats: dict[str, Any], device: torch.device) -> None:
    for key in ("loss_sum", "count", "correct"):
        if key in stats:
            value = torch.as_tensor(stats[key], dtype=torch.float64, device=device).detach()
            acc[key] = acc[key] + value if key in acc else value


def _reduce(acc: dict[str, torch.Tensor], info: ddp.DistInfo, device: torch.device) -> dict[str, float]:
    """Sum the statistics over processes; returns plain floats."""
    keys = sorted(acc)
    if not keys:
        return {}
    vec = ddp.all_reduce_sum(torch.stack([acc[k].to(device) for k in keys]), info)
    return dict(zip(keys, vec.tolist()))


def summarize(sums: dict[str, float], prefix: str, perplexity: bool = False) -> dict[str, float]:
    """``loss_sum/count`` -> ``{prefix}loss``, ``correct/count`` -> ``{prefix}accuracy``, ..."""
    count = sums.get("count", 0.0)
    if count <= 0:
        raise AttnlabError(f"no {prefix.rstrip('_') or 'evaluation'} examples were seen (stats['count'] == 0); "
                           "check that the data set is not empty")
    out = {f"{prefix}loss": sums["loss_sum"] / count}
    if "correct" in sums:
        out[f"{prefix}accuracy"] = sums["correct"] / count
    if perplexity:
        out[f"{prefix}perplexity"] = math.exp(min(out[f"{prefix}loss"], 700.0))
    return out


def evaluate(model: nn.Module, loss_fn: LossFn, batches: Batches, *, device: torch.device | None = None,
             autocast_dtype: torch.dtype | None = None, perplexity: bool = False, prefix: str = "val_",
             seed: int = 0, dist_info: ddp.DistInfo | None = None) -> dict[str, float]:
    """Mean loss (and accuracy / perplexity) of ``model`` over ``batches``, without gradients.

    Under DDP each process evaluates its shard and the sums are combined.
    """
    info = dist_info or ddp.DistInfo()
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    acc: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            for batch in batches.iter_epoch(0, seed, info.rank, info.world):
                _, stats = loss_fn(model, move_to(batch, device))
                _add_stats(acc, stats, device)
    finally:
        model.train(was_training)
    return summarize(_reduce(acc, info, device), prefix, perplexity)


@dataclass
class TrainState:
    """Where training stands; saved in ``training.pt`` so that ``--resume`` continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (completed epochs when batch_in_epoch == 0)
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    train_seconds: float = 0.0
    best_value: float | None = None
    best_step: int = -1
    bad_evals: int = 0
    last_eval_step: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_train_loss: float | None = None


def _call_on_eval(on_eval: Callable[..., Any], model: nn.Module, metrics: dict[str, float]) -> None:
    try:
        n_params = len(inspect.signature(on_eval).parameters)
    except (TypeError, ValueError):
        n_params = 2
    on_eval(model) if n_params == 1 else on_eval(model, metrics)


def fit(model: nn.Module, loss_fn: LossFn, train_batches: Batches, val_batches: Batches | None,
        cfg: TrainConfig, run_dir: str | Path, *, meta: dict[str, Any] | None = None,
        resume: bool = False, perplexity: bool = False,
        on_eval: Callable[..., Any] | None = None, progress: bool | None = None,
        tensorboard: bool = True) -> dict[str, float]:
    """Train ``model`` with AdamW, warm-up + cosine, clipping, accumulation, autocast and checkpoints.

    ``loss_fn(model, batch) -> (loss, stats)``: mean loss to back-propagate and a dict of sums
    (``loss_sum``, ``count`` and optionally ``correct``). Validation runs every
    ``cfg.eval_every`` steps (or once per epoch) and at the end; each validation writes the
    ``latest`` checkpoint and, when ``cfg.monitor`` improved, the ``best`` one.
    ``on_eval(model, metrics)`` is called on the main process after each validation, with the
    model in eval mode and the RNG state preserved (sampling there does not break resume).

    With ``resume=True`` training continues from ``run_dir``'s latest checkpoint exactly where
    it stopped (bit-identical in fp32 when no ``time_limit`` is set). Launched by ``torchrun``,
    the model is wrapped in DistributedDataParallel and only rank 0 writes files.

    Returns the final metrics: the validation metrics of the BEST evaluation (``val_loss``,
    ``val_accuracy`` if stats hold ``correct``, ``val_perplexity`` if ``perplexity``) plus
    ``train_loss``, ``train_seconds``, ``steps``, ``epochs``, ``best_step``, ``stopped_early``.
    When validation is active the model is left holding the BEST weights, not the last ones.

    With ``cfg.ema`` set, a running average of the weights (:class:`attnlab.engine.ema.ModelEMA`)
    is what validation measures, ``on_eval`` sees, the checkpoints' ``model.safetensors`` holds
    and the model is left with. ``training.pt`` keeps the training weights, for ``--resume``.
    """
    run_dir = Path(run_dir)
    meta = dict(meta or {})
    _check_config(cfg)
    mode = monitor_mode(cfg.monitor)
    device = select_device(cfg.device)
    info = ddp.init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    precision = resolve_precision(cfg.precision, device)
    steps_per_epoch = math.ceil(len(train_batches) / cfg.grad_accum)
    if steps_per_epoch == 0:
        raise AttnlabError("the training set yields no batches; check the data (or lower train.batch_size)")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    has_checkpoint = (run_dir / CHECKPOINTS / "latest").exists()
    if has_checkpoint and not resume:
        raise AttnlabError(f"{run_dir} already holds a training run; pass --resume to continue it, "
                           "or choose another --out directory")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    model.to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, decay_embeddings=cfg.decay_embeddings)
    schedule = WarmupCosine(optimizer, lr=cfg.lr, total_steps=total_steps, warmup_steps=cfg.warmup_steps,
                            min_lr_ratio=cfg.min_lr_ratio, time_limit=cfg.time_limit)
    scaler = make_grad_scaler(device, precision.use_scaler)
    state = TrainState()
    restore_rng: dict[str, Any] | None = None
    seed_everything(cfg.seed + info.rank)
    logger = RunLogger(run_dir, enabled=info.is_main, tensorboard=tensorboard)

    saved: dict[str, Any] = {}
    if resume and has_checkpoint:
        ckpt = load_checkpoint(run_dir, task=meta.get("task"), which="latest")
        ckpt.load_into(model)
        saved = ckpt.training_state()
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        state = TrainState(**saved["state"])
        restore_rng = saved["rng"]
        logger.truncate_after(state.step)
        if info.is_main:
            print(f"resuming {run_dir} at step {state.step} (epoch {state.epoch})", file=sys.stderr)
    elif resume and info.is_main:
        print(f"note: nothing to resume in {run_dir}; starting from scratch", file=sys.stderr)
    ema = _make_ema(model, cfg.ema, saved, info.is_main)
    averaged = ema.applied if ema is not None else contextlib.nullcontext  # the model holds the average

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    best_state: dict[str, torch.Tensor] | None = None
    meta.setdefault("train", asdict(cfg))

    saved_at: tuple[int, int, int] | None = None

    def save(tags: tuple[str, ...]) -> None:
        nonlocal saved_at
        saved_at = (state.step, state.epoch, state.batch_in_epoch)
        if info.is_main:
            training = {"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                        "scaler": scaler.state_dict(), "state": asdict(state), "rng": rng_state(),
                        "world": info.world}
            if ema is not None:
                training["ema"] = ema.state_dict()
            with averaged():
                save_checkpoint(run_dir, model, meta={**meta, "epoch": state.epoch}, training=training,
                                step=state.step, tags=tags)
        ddp.barrier(info)

    def run_eval() -> bool:
        """Validate, checkpoint, update early stopping; True when training should stop."""
        flush_log()  # train-loss windows end at evaluations, so a resumed run logs the same numbers
        with averaged():  # measure the average
            return _validate_save_and_call_back()

    def _validate_save_and_call_back() -> bool:
        nonlocal best_state
        assert val_batches is not None
        with preserved_rng():
            metrics = evaluate(model, loss_fn, val_batches, device=device, autocast_dtype=precision.autocast_dtype,
                               perplexity=perplexity, seed=cfg.seed, dist_info=info)
        if cfg.monitor not in metrics:
            raise AttnlabError(f"monitor '{cfg.monitor}' is not among the validation metrics "
                               f"({', '.join(metrics)}); set --set train.monitor=<one of them>")
        value = metrics[cfg.monitor]
        improved = math.isfinite(value) and (
            state.best_value is None or (value < state.best_value if mode == "min" else value > state.best_value))
        state.last_eval_step = state.step
        if improved:
            state.best_value, state.best_step, state.bad_evals = value, state.step, 0
            state.best_metrics = dict(metrics)
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            state.bad_evals += 1
        logger.log(state.step, metrics, epoch=state.epoch)
        save(("latest", "best") if improved else ("latest",))
        if on_eval is not None and info.is_main:
            model.eval()
            with preserved_rng(), torch.no_grad():
                _call_on_eval(on_eval, model, {**metrics, "step": state.step})
            model.train()
        return cfg.patience is not None and state.bad_evals >= cfg.patience

    disable = True if not info.is_main or progress is False else (None if progress is None else False)
    bar = tqdm(total=total_steps, initial=state.step, desc="train", unit="step", file=sys.stderr,
               disable=disable, dynamic_ncols=True)
    clock0 = time.perf_counter() - state.train_seconds
    window: dict[str, torch.Tensor] = {}
    window_t0, window_steps = time.perf_counter(), 0
    stop_reason = "done" if state.step >= total_steps else None
    if cfg.patience is not None and state.bad_evals >= cfg.patience:  # resuming an early-stopped run
        stop_reason = "early_stopping"

    def flush_log() -> None:
        nonlocal window, window_t0, window_steps
        if window_steps == 0:
            return
        sums = _reduce(window, info, device)
        loss = sums["loss_sum"] / max(sums.get("count", 0.0), 1e-12)
        if not math.isfinite(loss):
            raise AttnlabError(f"training diverged: the train loss is {loss} at step {state.step}; lower the "
                               "learning rate (--set train.lr=...) or use --set train.precision=fp32")
        rate = sums.get("count", 0.0) / max(time.perf_counter() - window_t0, 1e-9)
        state.last_train_loss = loss
        logger.log(state.step, {"train_loss": loss, "lr": schedule.last_lr, "items_per_sec": rate},
                   epoch=state.epoch)
        bar.set_postfix(loss=f"{loss:.4f}", items_s=f"{rate:.0f}", refresh=False)
        window, window_t0, window_steps = {}, time.perf_counter(), 0

    model.train()
    try:
        while stop_reason is None and state.epoch < cfg.epochs:
            n_batches = len(train_batches)
            batches = iter(train_batches.iter_epoch(state.epoch, cfg.seed, info.rank, info.world))
            for _ in range(state.batch_in_epoch):  # skip what the checkpoint already consumed
                next(batches, None)
            if restore_rng is not None:  # after skipping, in case the batches draw random numbers
                set_rng_state(restore_rng)
                restore_rng = None
            pos, in_group, group = state.batch_in_epoch, 0, 1
            for batch in batches:
                if in_group == 0:
                    group = max(1, min(cfg.grad_accum, n_batches - pos))
                in_group, pos = in_group + 1, pos + 1
                sync = in_group >= group
                no_sync = net.no_sync() if info.enabled and not sync else contextlib.nullcontext()
                with no_sync:
                    with autocast_context(device, precision.autocast_dtype):
                        loss, stats = loss_fn(net, move_to(batch, device))
                    scaler.scale(loss / group).backward()
                _add_stats(window, stats, device)
                if not sync:
                    continue
                in_group = 0
                stop_reason = _optimizer_step(cfg, schedule, scaler, optimizer, params, state, clock0, pos, ema)
                window_steps += 1
                bar.update(1)
                if state.step % cfg.log_every == 0:
                    flush_log()
                if state.step >= total_steps:
                    stop_reason = stop_reason or "max_steps"
                if cfg.time_limit is not None and info.enabled:  # rank 0's clock decides for all
                    out_of_time = ddp.broadcast_flag(stop_reason == "time_limit", info, device)
                    if out_of_time or stop_reason == "time_limit":
                        stop_reason = "time_limit" if out_of_time else None
                if val_batches is not None and cfg.eval_every and state.step % cfg.eval_every == 0:
                    if run_eval():
                        stop_reason = stop_reason or "early_stopping"
                if stop_reason is not None:
                    break
            if stop_reason is None and in_group > 0:  # the data ended inside an accumulation group
                stop_reason = _optimizer_step(cfg, schedule, scaler, optimizer, params, state, clock0, pos, ema)
                window_steps += 1
                bar.update(1)
                if state.step >= total_steps:
                    stop_reason = stop_reason or "max_steps"
            if stop_reason is None or pos >= n_batches:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                if val_batches is not None and not cfg.eval_every and stop_reason is None and run_eval():
                    stop_reason = "early_stopping"
        flush_log()
        state.train_seconds = time.perf_counter() - clock0
        if val_batches is not None and state.last_eval_step != state.step:
            run_eval()
        elif saved_at != (state.step, state.epoch, state.batch_in_epoch):
            save(("latest",))
    finally:
        bar.close()
        logger.close()

    final: dict[str, float] = {}
    if ema is not None:
        ema.copy_to_model()  # without validation, the last average is the model
    if val_batches is not None:
        if best_state is not None:
            model.load_state_dict(best_state)
        elif state.best_step >= 0:  # resumed: the best weights are on disk
            load_checkpoint(run_dir, which="best").load_into(model)
        final.update(state.best_metrics)
    if state.last_train_loss is not None:
        final["train_loss"] = state.last_train_loss
    final.update({
        "train_seconds": round(state.train_seconds, 3),
        "steps": state.step,
        "epochs": round(state.epoch + state.batch_in_epoch / max(1, len(train_batches)), 4),
        "best_step": state.best_step,
        "stopped_early": float(stop_reason == "early_stopping"),
        "world_size": info.world,
    })
    ddp.shutdown(info)
    return final


def _optimizer_step(cfg: TrainConfig, schedule: WarmupCosine, scaler: torch.amp.GradScaler,
                    optimizer: torch.optim.Optimizer, params: list[nn.Parameter], state: TrainState,
                    clock0: float, pos: int, ema: ModelEMA | None = None) -> str | None:
    """One AdamW step with the scheduled lr and clipping (then the weight average, if any);
    returns 'time_limit' when time is up."""
    elapsed = time.perf_counter() - clock0
    schedule.apply(state.step, elapsed)
    if cfg.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update()
    state.step += 1
    state.batch_in_epoch = pos
    state.train_seconds = time.perf_counter() - clock0
    if cfg.time_limit is not None and state.train_seconds >= cfg.time_limit:
        return "time_limit"
    return None


def _make_ema(model: nn.Module, decay: float | None, saved: dict[str, Any], verbose: bool) -> ModelEMA | None:
    """The weight average of a new or resumed run; ``saved`` is the resumed ``training.pt`` ({} if new).

    A checkpoint written with averaging holds the averaged weights in ``model.safetensors`` (now
    in the model) and the training weights in ``saved["ema"]``.
    """
    ema = ModelEMA(model, decay) if decay else None
    state = saved.get("ema")
    if state is None:
        if ema is not None and saved and verbose:
            print("note: train.ema is on but the resumed run had no average; it starts now", file=sys.stderr)
        return ema
    try:
        if ema is None:  # averaging switched off on resume: continue from the training weights
            ModelEMA(model, float(state["decay"])).load_state_dict(state)
            if verbose:
                print("note: train.ema is off; resuming from the training weights, not the average", file=sys.stderr)
            return None
        ema.load_state_dict(state)
    except (KeyError, ValueError) as exc:
        raise AttnlabError(f"the checkpoint's weight average cannot be restored ({exc}); "
                           "retrain without --resume") from None
    ema.decay = decay  # a changed train.ema applies from here on
    return ema


def _check_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.grad_accum < 1:
        problems.append("train.grad_accum must be >= 1")
    if cfg.epochs < 1:
        problems.append("train.epochs must be >= 1")
    if cfg.log_every < 1:
        problems.append("train.log_every must be >= 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        problems.append("train.max_steps must be >= 1 (or none)")
    if cfg.eval_every is not None and cfg.eval_every < 0:
        problems.append("train.eval_every must be >= 1 (or none for once per epoch)")
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        problems.append("train.min_lr_ratio must be in [0, 1]")
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:
        problems.append("train.ema must be in (0, 1), e.g. 0.999 (or none to switch averaging off)")
    if problems:
        raise AttnlabError("; ".join(problems))
