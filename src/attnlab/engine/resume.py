"""Exact resume: what a checkpoint holds besides the weights, and putting a run back where it stopped.

A checkpoint's ``training.pt`` (:func:`resume_state` writes it, :func:`restore` reads it back;
plain tensors and containers, loaded with ``torch.load(weights_only=True)``)::

    optimizer, scheduler, scaler   their state_dict()s
    state                          TrainState.state_dict(): step, position in the data, clock,
                                   best validation, patience count, last train loss
    rng, world                     rank 0's random streams; the number of processes
    rng_ranks                      every process's streams (multi-process runs only)
    ema                            the weight average and the training weights (train.ema only)

With averaging, ``model.safetensors`` holds the *averaged* weights (what consumers of checkpoints
want) and ``ema`` the training weights, so that a resume continues from the weights it trained.

:func:`restore` also refuses input files whose checksums changed (``meta["inputs"]``) and, when
it continues from an earlier checkpoint, abandons the later ones
(:func:`attnlab.engine.checkpoint.rewind`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from attnlab.engine import distributed as ddp
from attnlab.engine.checkpoint import CHECKPOINTS, latest, load_checkpoint, rewind
from attnlab.engine.ema import ModelEMA
from attnlab.engine.rng import rng_state, set_rng_state
from attnlab.engine.state import TrainState
from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from attnlab.engine.run import TrainingRun

__all__ = ["resume_state", "restore"]

Note = Callable[[str], None]


def resume_state(run: TrainingRun) -> dict[str, Any] | None:
    """What ``training.pt`` holds for :func:`restore`, on the main process (None on the others).
    Every process must call it: each one's random streams are gathered."""
    rng = ddp.gather_objects(rng_state(), run.dist)
    if not run.dist.is_main:
        return None
    training = {"optimizer": run.optimizer.state_dict(), "scheduler": run.schedule.state_dict(),
                "scaler": run.scaler.state_dict(), "state": run.state.state_dict(), "rng": rng[0],
                "world": run.dist.world}
    if run.dist.world > 1:
        training["rng_ranks"] = rng
    if run.ema is not None:
        training["ema"] = run.ema.state_dict()
    return training


def restore(run: TrainingRun, resume: bool | str | Path, *, allow_changed_data: bool = False) -> None:
    """Continue ``run`` from its directory's latest checkpoint (``resume=True``) or from the earlier
    checkpoint ``resume`` names: weights, optimizer, schedule, scaler, weight average, position in
    the data and every random stream."""
    note = run.progress.note
    resume_from = None if isinstance(resume, bool) else Path(resume)
    if resume_from is None and latest(run.run_dir) is None:
        note(f"note: nothing to resume in {run.run_dir}; starting from scratch")
        return
    ckpt = load_checkpoint(resume_from or run.run_dir, task=run.meta.get("task"), which="latest")
    check_inputs(run.meta.get("inputs") or {}, ckpt.meta.get("inputs") or {}, allow_changed_data, note)
    ckpt.load_into(run.model)
    saved = ckpt.training_state()
    run.optimizer.load_state_dict(saved["optimizer"])
    run.schedule.load_state_dict(saved["scheduler"])
    run.scaler.load_state_dict(saved["scaler"])
    run.state = TrainState.from_dict(saved["state"])
    _restore_rng(saved, run.dist, run.cfg.seed + run.dist.rank + run.state.step, note)
    if resume_from is not None and ckpt.path.parent.resolve() != (run.run_dir / CHECKPOINTS).resolve():
        # another run's checkpoint: this directory continues it as a new run; its best stays there
        note(f"note: continuing {ckpt.path} in {run.run_dir}; the search for the best starts afresh")
        run.state.best.forget()
    elif resume_from is not None:  # an earlier checkpoint of this run: the later ones are abandoned
        best_kept = rewind(run.run_dir, ckpt.path, run.state.best.step) if run.dist.is_main else True
        if not ddp.broadcast_flag(best_kept, run.dist, run.device):
            note(f"note: the best checkpoint of step {run.state.best.step} is no longer kept; the next "
                 "validation starts the search for the best afresh")
            run.state.best.forget()
    run.ema = _restore_ema(run.model, run.ema, saved.get("ema"), note)
    run.saved_at = run.state.position()
    note(f"resuming {run.run_dir} at step {run.state.step} (epoch {run.state.epoch}) from {ckpt.path}")


def check_inputs(now: dict[str, Any], saved: dict[str, Any], allow_changed_data: bool, note: Note) -> None:
    """The files a run was trained on must be the files it resumes on (``meta["inputs"]``: name ->
    ``{"path", "checksum"}``), unless ``allow_changed_data``. Checked before anything is written."""
    for name, entry in now.items():
        before = saved.get(name)
        if before is None or before.get("checksum") == entry.get("checksum"):
            continue
        if allow_changed_data:
            note(f"note: the {name} ({entry.get('path')}) differs from the run's; continuing on it as asked")
            continue
        raise AttnlabError(f"--resume: the {name} {entry.get('path')} is not the file this run was trained on "
                           f"({before.get('path')}; its checksum differs); resume with the original file, or "
                           "pass --allow-changed-data to continue on the new one")


def _restore_rng(saved: dict[str, Any], dist: ddp.DistInfo, fallback_seed: int, note: Note) -> None:
    """Each process's own random streams (dropout differs between ranks), when the run resumes
    on as many processes as it was saved from; otherwise rank 0's, and on the other ranks a fresh
    seed (``fallback_seed``: differs per rank and step), with a note."""
    per_rank = saved.get("rng_ranks") or [saved["rng"]]
    if len(per_rank) == dist.world:
        set_rng_state(per_rank[dist.rank])
        return
    note(f"note: the checkpoint was written by {len(per_rank)} process(es) and resumes on "
         f"{dist.world}; the data order is the same, the dropout draws are not")
    set_rng_state(per_rank[0])
    if dist.rank:
        torch.manual_seed(fallback_seed)


def _restore_ema(model: nn.Module, ema: ModelEMA | None, saved: dict[str, Any] | None,
                 note: Note) -> ModelEMA | None:
    """The weight average after a resume. A checkpoint written with averaging holds the averaged
    weights in ``model.safetensors`` (now in ``model``) and the training weights in ``saved``."""
    if saved is None:
        if ema is not None:
            note("note: train.ema is on but the resumed run had no average; it starts now")
        return ema
    try:
        if ema is None:  # averaging switched off on resume: continue from the training weights
            ModelEMA(model, float(saved["decay"])).load_state_dict(saved)
            note("note: train.ema is off; resuming from the training weights, not the average")
            return None
        decay = ema.decay
        ema.load_state_dict(saved)
        ema.decay = decay  # a changed train.ema applies from here on
        return ema
    except (KeyError, ValueError) as exc:
        raise AttnlabError(f"the checkpoint's weight average cannot be restored ({exc}); "
                           "retrain without --resume") from None
