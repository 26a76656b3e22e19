"""Run directories: one process at a time owns one, default names never collide, and a
command that writes never lands on another run's directory.

Ownership is an exclusive ``fcntl`` lock on ``RUN/.lock``, held while the process works there;
the file holds the owner's PID, so a second process is told who has it. The lock goes away with
the process however it ends (the kernel releases it), so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from attnlab.engine.checkpoint import CHECKPOINTS, latest
from attnlab.engine.logging import METRICS_LOG
from attnlab.errors import AttnlabError
from attnlab.files import make_folder, write_error

try:  # POSIX; on Windows there is no fcntl, and runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "new_run_dir", "holds_training_run", "refuse_restart", "run_directory"]

LOCK = ".lock"


def new_run_dir(task: str, kind: str = "", root: Path = Path("runs")) -> Path:
    """A fresh ``runs/<task>[-<kind>]-<YYYYmmdd-HHMMSS>`` directory, created now. Two runs started
    in the same second get ``...-2``, ``...-3`` (the creation itself is the atomic check)."""
    base = f"{task}{'-' + kind if kind else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            make_folder(root, named=path)
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except AttnlabError as exc:
            raise AttnlabError(f"{exc}; or pass --out DIR") from None
        except OSError as exc:
            raise AttnlabError(f"{write_error(exc, path)}; or pass --out DIR") from None
    raise AttnlabError(f"could not create a new run directory under {root}; pass --out DIR")


def holds_training_run(path: Path) -> bool:
    """Whether ``path`` is (or was meant to be) the directory of a training run: it has
    checkpoints or a training log. Commands other than ``train`` refuse to write there."""
    return (path / CHECKPOINTS).exists() or (path / METRICS_LOG).exists()


def refuse_restart(run_dir: Path, resume: bool | Path) -> None:
    """A run that does not resume never starts over in a directory whose run has checkpoints."""
    if not resume and latest(run_dir) is not None:
        raise AttnlabError(f"{run_dir} already holds a training run; pass --resume to continue it, "
                           "or choose another --out directory")


def _prepare(path: Path) -> None:
    """Create ``path`` (and parents) with clear errors for a file in the way or no permission."""
    if path.exists() and not path.is_dir():
        raise AttnlabError(f"--out {path} is a file, not a directory; choose a directory name")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise AttnlabError(f"cannot create the run directory {path}: permission denied; choose a writable "
                           "--out (the current directory may be read-only)") from None
    except OSError as exc:
        raise AttnlabError(f"cannot create the run directory {path} ({exc.strerror}); choose another --out") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise AttnlabError(f"the run directory {path} is not writable; choose a writable --out")


@contextlib.contextmanager
def run_directory(path: Path, *, created: bool = False) -> Iterator[Path]:
    """Own ``path`` for the block: create it if needed and hold its lock.

    A second process gets a clear error naming the owner's PID. If the block fails before the
    run wrote anything (no log, no checkpoint), what this call made goes again: the directory, if
    it (or the caller, ``created=True``) created it, else the lock file it added to a folder that
    existed. So a failed command leaves no half-made run behind; a run that has started is kept.
    """
    created = created or not path.exists()
    _prepare(path)
    lock = path / LOCK
    new_lock = not lock.exists()
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AttnlabError(f"cannot write in the run directory {path} ({exc.strerror}); choose another --out") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise AttnlabError(f"run directory {path} is in use by another attnlab process (PID {owner}); "
                                   "wait for it to finish, or choose another --out") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it (a full disk fails here first)
        except OSError as exc:  # what this attempt made goes again: the directory, or the empty lock file
            if created:
                shutil.rmtree(path, ignore_errors=True)
            elif new_lock:
                lock.unlink(missing_ok=True)
            raise write_error(exc, path) from None
        try:
            yield path
        except BaseException:
            if not holds_training_run(path):  # nothing of a run was written: take back what this made
                if created:
                    shutil.rmtree(path, ignore_errors=True)
                elif new_lock:
                    lock.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)  # releases the lock
