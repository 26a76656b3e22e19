"""Building and loading DialogueGPT's C++ decoding step (``gpt_step.cpp``; :mod:`attnlab.models.gpt_step`).

``torch.utils.cpp_extension`` builds it on first use (about 20 s, said on stderr), then loads it
from ``TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``) in a tenth of a second.
``ATTNLAB_DECODE`` chooses (:func:`native_for`): ``auto`` (the default) uses it where this machine
has what the build takes (:func:`can_build_native`) and decodes in Python elsewhere or after a
failed build (one warning line); ``python`` never builds; ``cpp`` is an error where it cannot be
built. A lock file left by a build that was killed outright is removed, instead of making every
later build wait for it without end.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.models.configs import DECODE_ENV

__all__ = ["STALE_LOCK_S", "can_build_native", "native_for", "native_step"]


_SOURCE = Path(__file__).with_name("gpt_step.cpp")


def _name() -> str:
    """The extension's name, and its build folder's: one per source file and content, so that two
    installs (or versions) do not rebuild over each other's build."""
    digest = hashlib.sha256(str(_SOURCE.resolve()).encode() + b"\0" + _SOURCE.read_bytes()).hexdigest()
    return f"attnlab_gpt_step_{digest[:12]}"


def can_build_native() -> bool:
    """Whether this machine has what building the C++ step takes: ninja and a C++ compiler
    (``$CXX``, else ``c++``) on the PATH, and Python's headers."""
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return bool(shutil.which("ninja") and shutil.which(os.environ.get("CXX", "c++"))) and headers.exists()


@functools.cache
def _built_or_reason() -> tuple[Any, str]:
    """(the C++ step's module, "") or (None, the first line of why it could not be built). Built by
    ``torch.utils.cpp_extension`` on first use (about 20 s, said on stderr), then loaded from
    ``TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``) in well under a second."""
    from torch.utils import cpp_extension

    try:
        name = _name()
    except OSError as e:  # a broken install
        return None, f"cannot read {_SOURCE} ({e.strerror})"
    try:
        folder: Path | None = Path(cpp_extension._get_build_directory(name, False))
    except Exception:  # a private helper: if it moves, say "compiling" every time rather than fail
        folder = None
    waits = folder is not None and _clear_stale_lock(folder / "lock")
    if not waits and (folder is None or not (folder / f"{name}.so").exists()):
        print(f"attnlab: compiling the C++ decoding step, once (about 20 s; {DECODE_ENV}=python skips it)",
              file=sys.stderr, flush=True)
    try:
        return cpp_extension.load(name=name, sources=[str(_SOURCE)], extra_cflags=["-O2"]), ""
    except Exception as e:  # no compiler, no ninja, a failed build: one line, and the way back
        return None, (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


STALE_LOCK_S = 600.0  # where open files cannot be seen: a build takes about 20 s, so a lock this old is left over


def _lock_held(lock: Path) -> bool | None:
    """Whether a process has ``lock`` open (Linux, from ``/proc``: the builder keeps it open until
    it removes it), or None where that cannot be seen."""
    if not Path("/proc/self/fd").is_dir():
        return None
    target = os.path.realpath(lock)
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fds.iterdir()):
                return True
        except OSError:  # another user's process, or one that just ended
            continue
    return False


def _clear_stale_lock(lock: Path) -> bool:
    """``torch.utils.cpp_extension`` holds a lock file while it builds and waits, without end, while
    one exists; a build killed outright (``kill -9``) leaves it behind. Remove one that no process
    holds (or, where that cannot be seen, one older than :data:`STALE_LOCK_S`); say so when a
    live one makes this process wait for another's build (then True)."""
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    held = _lock_held(lock)
    if not (held if held is not None else age <= STALE_LOCK_S):
        lock.unlink(missing_ok=True)
        print(f"attnlab: removed {lock}, left by a build of the C++ decoding step that did not finish "
              f"(started {age / 60:.0f} minutes ago)", file=sys.stderr, flush=True)
        return False
    print(f"attnlab: waiting for another process's build of the C++ decoding step (it holds {lock}; "
          "if no other is running, delete that file)", file=sys.stderr, flush=True)
    return True


def native_step() -> Any:
    """The C++ one-row step's module (``gpt_step.cpp``), built on first use; an :class:`AttnlabError`
    that says what it needs when it cannot be built."""
    module, reason = _built_or_reason()
    if module is None:
        raise AttnlabError(f"{DECODE_ENV}=cpp could not build the C++ decoding step ({reason}); it needs a C++ "
                           f"compiler and ninja (pip install ninja), or set {DECODE_ENV}=python for the Python "
                           "step")
    return module


@functools.cache
def _auto_native() -> Any:
    """``auto``'s choice: the C++ step where this machine can build it, else None (Python). A build
    that fails all the same is one warning line, once per process."""
    if not can_build_native():
        return None
    module, reason = _built_or_reason()
    if module is None:
        print(f"attnlab: warning: could not build the C++ decoding step ({reason}); decoding in Python "
              f"({DECODE_ENV}=python skips the attempt)", file=sys.stderr, flush=True)
    return module


def native_for(backend: str) -> Any:
    """The C++ step's module that ``backend`` (``auto``, ``python`` or ``cpp``, as from
    :func:`decode_backend`) decodes with, or None for Python. Building it (the first time) happens
    here, so callers that time decoding call this before the clock starts."""
    if backend == "cpp":
        return native_step()
    return _auto_native() if backend == "auto" else None
