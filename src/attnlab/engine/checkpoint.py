"""Checkpoints: written atomically, loaded without unpickling arbitrary objects.

Layout under ``run_dir/checkpoints/``::

    step-00000120/          one complete checkpoint
        model.safetensors   weights (tied/shared tensors stored once)
        training.pt         optimizer, scheduler, scaler, RNG states, position, early-stopping state
                            (plain tensors and containers: loads with ``torch.load(weights_only=True)``)
        meta.json           task, model config, vocabulary, attnlab version, step, file checksums
    latest                  text file naming the newest checkpoint directory
    best                    text file naming the best one (when validation is active)

A checkpoint is written into a temporary directory, every file fsync'ed, then renamed into
place; the pointers are replaced with ``os.replace``. A crash at any moment leaves the previous
checkpoint intact and the pointers naming complete directories.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.files import WRITE_ERRNOS, file_digest, fsync_dir, fsync_file, write_atomic, write_error

CHECKPOINTS = "checkpoints"
FILES = ("model.safetensors", "training.pt", "meta.json")
FORMAT = 1
NAME = re.compile(r"step-(\d{8})(\.\d+)?")  # a checkpoint directory's name: its step, and a counter for repeats


def attnlab_version() -> str:
    try:
        return metadata.version("attnlab")
    except metadata.PackageNotFoundError:
        return "unknown"


class _OwnStorage:
    """``model`` as safetensors' ``save_model``/``load_model`` see it: every tensor of its state
    dict owns its storage. Those helpers refuse a tensor that is a view of a bigger buffer, and
    :class:`~attnlab.engine.flat_adamw.FlatAdamW` keeps a group's parameters in one buffer; such
    views are copied (a tied weight once, so the file still stores it once)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        copies: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        out = {}
        for name, t in self.model.state_dict().items():
            whole = t.untyped_storage().nbytes() == t.numel() * t.element_size()
            out[name] = t if whole else copies.setdefault((t.data_ptr(), tuple(t.shape)), t.clone())
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
        return self.model.load_state_dict(state, strict=strict)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _write_pointer(root: Path, tag: str, name: str) -> None:
    write_atomic(root / tag, name + "\n")


def follow(root: Path, tag: str) -> Path | None:
    """The checkpoint the pointer ``root/tag`` names (None without one). A pointer names a
    ``step-*`` directory of this very ``checkpoints/`` folder, or it is refused: a run never
    continues another run's weights through an edited pointer."""
    pointer = root / tag
    if not pointer.exists():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AttnlabError(f"{pointer} is unreadable ({exc}); pass one of the checkpoint directories in {root} "
                           "explicitly") from None
    if not NAME.fullmatch(name):
        raise AttnlabError(f"{pointer} names {name!r}, not a checkpoint of this run (a step-NNNNNNNN directory "
                           f"beside it); pass one of the checkpoint directories in {root} explicitly")
    return root / name


def latest(run_dir: str | Path) -> Path | None:
    """This run's latest checkpoint: the directory ``run_dir/checkpoints/latest`` names, or None
    when the run has written no checkpoint yet (the one test of "is there a run to resume")."""
    return follow(Path(run_dir) / CHECKPOINTS, "latest")


def save_checkpoint(run_dir: str | Path, model: nn.Module, *, meta: dict[str, Any],
                    training: dict[str, Any] | None = None, step: int = 0,
                    tags: tuple[str, ...] = ("latest",), keep_last: int = 0) -> Path:
    """Write a checkpoint of ``model`` under ``run_dir/checkpoints`` and point ``tags`` at it.

    ``meta`` must be JSON-serialisable (task, model config, vocabulary, ...); ``training`` holds
    tensors and plain containers only. Checkpoints no pointer names any more are deleted, but the
    newest ``keep_last``. Returns the checkpoint directory.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name, n = f"step-{step:08d}", 1
    while (root / name).exists():
        name, n = f"step-{step:08d}.{n}", n + 1
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_model(_OwnStorage(unwrap(model)), str(tmp / "model.safetensors"),  # type: ignore[arg-type]
                   force_contiguous=True)
        buf = io.BytesIO()
        torch.save(training or {}, buf)
        (tmp / "training.pt").write_bytes(buf.getvalue())
        full_meta = {**meta, "step": step, "attnlab_version": attnlab_version(), "format": FORMAT,
                     "sha256": {f: file_digest(tmp / f, "sha256") for f in FILES[:2]}}
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1))
        for f in FILES:
            fsync_file(tmp / f)
        fsync_dir(tmp)
        os.rename(tmp, root / name)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        refusal = _write_refusal(exc)
        if refusal is None:
            raise
        raise _unsaved(write_error(refusal, root / name), root) from None
    try:
        fsync_dir(root)
        for tag in tags:
            _write_pointer(root, tag, name)
        fsync_dir(root)
    except AttnlabError as exc:  # a pointer could not be replaced: it still names a complete checkpoint
        raise _unsaved(exc, root) from None
    _collect_garbage(root, keep_last)
    return root / name


def _write_refusal(exc: BaseException) -> OSError | None:
    """The operating system's refusal behind a failed checkpoint write, if that is what it was
    (safetensors reports a full disk as its own error type, with the OS message inside)."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return exc
    if type(exc).__name__ == "SafetensorError" and "No space left on device" in str(exc):
        return OSError(errno.ENOSPC, "No space left on device")
    return None


def _unsaved(exc: AttnlabError, root: Path) -> AttnlabError:
    last = follow(root, "latest")
    kept = (f"the last complete checkpoint ({last.name}) is still the run's latest, so the same command with "
            "--resume continues from it" if last is not None else "no checkpoint of this run was written yet")
    return AttnlabError(f"{exc}; {kept}")


def _collect_garbage(root: Path, keep_last: int = 0) -> None:
    """Delete the checkpoints no pointer names, except the newest ``keep_last`` ones, and the
    leftovers of interrupted writes (the run directory's lock means no other writer is active)."""
    keep = {p.name for p in (follow(root, "latest"), follow(root, "best")) if p is not None}
    steps = sorted((e for e in root.iterdir() if e.is_dir() and e.name.startswith("step-")),
                   key=lambda e: (int(e.name[5:].split(".")[0]), e.name))
    keep |= {e.name for e in steps[max(0, len(steps) - keep_last):]} if keep_last else set()
    for entry in root.iterdir():
        if entry.is_dir() and entry.name not in keep and entry.name.startswith(("step-", ".tmp-")):
            shutil.rmtree(entry, ignore_errors=True)


def rewind(run_dir: str | Path, checkpoint: Path, best_step: int) -> bool:
    """Make ``checkpoint`` (one of the run's) the run's latest: delete the checkpoints written
    after it (an abandoned continuation) and point ``best`` at the checkpoint of ``best_step``.
    Returns False when that one is gone (``best`` then names nothing until the next improvement)."""
    root = Path(run_dir) / CHECKPOINTS
    step = int(checkpoint.name[5:].split(".")[0])
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith("step-") and int(entry.name[5:].split(".")[0]) > step:
            shutil.rmtree(entry, ignore_errors=True)
    _write_pointer(root, "latest", checkpoint.name)
    best = sorted(e.name for e in root.iterdir() if e.is_dir() and e.name.startswith(f"step-{best_step:08d}"))
    if best_step >= 0 and best:
        _write_pointer(root, "best", best[-1])
        return True
    (root / "best").unlink(missing_ok=True)
    return False


# --------------------------------------------------------------------------- loading
@dataclass
class Checkpoint:
    """A checked checkpoint: ``meta`` (JSON); the weights and the training state on demand."""

    path: Path
    meta: dict[str, Any]

    @property
    def task(self) -> str | None:
        return self.meta.get("task")

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    def weights(self) -> dict[str, torch.Tensor]:
        """The state dict, on the CPU (tied weights stored once)."""
        return load_file(str(self.path / "model.safetensors"))

    def load_into(self, model: nn.Module, *, strict: bool = True) -> nn.Module:
        """Copy the weights into ``model`` (tied weights are restored); returns ``model``."""
        model = unwrap(model)
        device = next(model.parameters()).device if any(True for _ in model.parameters()) else "cpu"
        try:
            load_model(_OwnStorage(model), str(self.path / "model.safetensors"),  # type: ignore[arg-type]
                       strict=strict, device=str(device))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise AttnlabError(
                f"checkpoint {self.path} does not match this model ({first}); "
                "rebuild the model from the checkpoint's meta.json config or pick the matching checkpoint"
            ) from None
        return model

    def training_state(self) -> dict[str, Any]:
        """Optimizer/scheduler/RNG/position state, loaded with ``torch.load(weights_only=True)``."""
        try:
            return torch.load(self.path / "training.pt", map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _corrupt(self.path, "training.pt", exc) from None


def _corrupt(path: Path, fname: str, exc: Exception | str) -> AttnlabError:
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return AttnlabError(
        f"checkpoint {path} is damaged: {fname} is unreadable ({reason}); "
        "resume from an earlier checkpoint with --resume-from RUN/checkpoints/step-NNNNNNNN (runs keep them "
        "when train.keep_last > 0; `latest` and `best` are always kept), or retrain without --resume"
    )


def resolve_checkpoint_dir(path: str | Path, which: str = "best") -> Path:
    """A checkpoint directory from a checkpoint dir, a run dir or a run's ``checkpoints/`` dir.

    For a run, ``which`` picks the ``best`` (falls back to ``latest``) or the ``latest`` pointer.
    """
    path = Path(path)
    if not path.exists():
        raise AttnlabError(f"checkpoint path {path} does not exist; pass a run directory "
                           "(e.g. runs/toy-20250101-120000) or one of its checkpoints/step-* directories")
    if path.is_file():
        path = path.parent
    if any((path / f).exists() for f in FILES):
        return path
    root = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    for tag in ((which, "latest") if which != "latest" else ("latest",)):
        target = follow(root, tag)
        if target is not None:
            if not target.is_dir():
                raise AttnlabError(f"{root / tag} names {target.name}, which is missing; pass one of the "
                                   f"checkpoint directories in {root} explicitly")
            return target
    raise AttnlabError(f"no checkpoint found in {path} (expected model.safetensors, or checkpoints/latest "
                       "in a run directory); train first with `attnlab train TASK --out DIR`")


def _read_meta(ckpt: Path) -> dict[str, Any]:
    for fname in FILES:
        if not (ckpt / fname).is_file():
            raise AttnlabError(f"checkpoint {ckpt} is incomplete: {fname} is missing; pass a complete "
                               "checkpoint directory (or the run directory to use its latest one)")
    try:
        meta = json.loads((ckpt / "meta.json").read_text())
        assert isinstance(meta, dict), "not a JSON object"
    except (json.JSONDecodeError, UnicodeDecodeError, AssertionError) as exc:
        raise _corrupt(ckpt, "meta.json", exc) from None
    return meta


def read_meta(path: str | Path, *, which: str = "best") -> dict[str, Any]:
    """The ``meta.json`` of a checkpoint (task, model config, vocabulary, ...) without its weights."""
    ckpt = resolve_checkpoint_dir(path, which)
    return _check_name(ckpt, _read_meta(ckpt))


def _check_name(ckpt: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A ``step-N`` directory holds step N: a renamed one would resume at a step it never reached."""
    named = NAME.fullmatch(ckpt.name)
    if named and int(named.group(1)) != meta.get("step"):
        raise AttnlabError(f"checkpoint {ckpt} holds step {meta.get('step')}, not the step its name says "
                           f"({int(named.group(1))}): it was renamed; give it back its name "
                           f"(step-{meta.get('step', 0):08d}) or pass another checkpoint")
    return meta


def load_checkpoint(path: str | Path, task: str | None = None, *, which: str = "best") -> Checkpoint:
    """Load a checkpoint (weights + meta) from a checkpoint dir or a run dir.

    Raises ``AttnlabError`` if it is missing, truncated, corrupted (checksums), or was written
    by another task than ``task``.
    """
    ckpt = resolve_checkpoint_dir(path, which)
    meta = _check_name(ckpt, _read_meta(ckpt))
    if task is not None and meta.get("task") != task:
        other = meta.get("task")
        raise AttnlabError(f"checkpoint {ckpt} was trained by task '{other}', not '{task}'; "
                           f"use `attnlab eval {other} --checkpoint {path}` or a '{task}' checkpoint")
    for fname, digest in (meta.get("sha256") or {}).items():
        if (ckpt / fname).is_file() and file_digest(ckpt / fname, "sha256") != digest:
            raise _corrupt(ckpt, fname, "checksum mismatch: the file was truncated or modified")
    try:  # the header only: the tensors are read once, by load_into
        with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
            f.keys()
    except Exception as exc:
        raise _corrupt(ckpt, "model.safetensors", exc) from None
    return Checkpoint(ckpt, meta)
