"""Building and loading attnlab's C++ extensions (:class:`NativeBuild`).

``torch.utils.cpp_extension`` builds one on first use (tens of seconds, said once on stderr), then
loads it from ``TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``) in a tenth of a
second. Each source file and content gets its own build folder, so two installs (or versions) do
not rebuild over each other's build. A lock file left by a build that was killed outright is
removed, instead of making every later build wait for it without end.

The extensions: DialogueGPT's one-row decoding step (:mod:`attnlab.models.gpt_step_build`), the
causal attention kernel for short windows (:mod:`attnlab.attention_kernel`), which
``ATTNLAB_ATTENTION`` chooses (:func:`attention_backend`), and the one-pass AdamW step
(:mod:`attnlab.engine.adamw_kernel`), which ``ATTNLAB_ADAMW`` chooses (:func:`adamw_backend`). Both
choices are read torch-free, so that the command line checks them before importing torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

__all__ = ["ADAMW_ENV", "ATTENTION_ENV", "BACKENDS", "STALE_LOCK_S", "NativeBuild", "adamw_backend",
           "attention_backend", "backend_choice", "can_build_native", "warn"]

STALE_LOCK_S = 600.0  # where open files cannot be seen: a build takes under a minute, so a lock this old is left over


def can_build_native() -> bool:
    """Whether this machine has what building a C++ extension takes: ninja and a C++ compiler
    (``$CXX``, else ``c++``) on the PATH, and Python's headers."""
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return bool(shutil.which("ninja") and shutil.which(os.environ.get("CXX", "c++"))) and headers.exists()


class NativeBuild:
    """One C++ extension: its ``source``, the ``prefix`` of its build folder's name, ``what`` it is
    in words ("the C++ decoding step"), how to ``skip`` it (an environment setting), what the build
    ``needs``, what runs ``instead`` and the ``fallback`` in words (for messages), its compiler and
    linker flags. :meth:`built_or_reason` builds or loads it once per process; :meth:`required`
    and :meth:`auto` are the two ways to ask for it."""

    def __init__(self, source: Path, prefix: str, what: str, skip: str, *, instead: str, fallback: str,
                 needs: str = "a C++ compiler and ninja (pip install ninja)", seconds: int = 20,
                 cflags: tuple[str, ...] = ("-O2",), ldflags: tuple[str, ...] = ()) -> None:
        self.source, self.prefix, self.what, self.skip, self.seconds = source, prefix, what, skip, seconds
        self.instead, self.fallback, self.needs = instead, fallback, needs
        self.cflags, self.ldflags = cflags, ldflags
        self._outcome: tuple[Any, str] | None = None
        self._auto: tuple[Any] | None = None

    def name(self) -> str:
        """The extension's name, and its build folder's: one per source file and content."""
        digest = hashlib.sha256(str(self.source.resolve()).encode() + b"\0" + self.source.read_bytes()).hexdigest()
        return f"{self.prefix}_{digest[:12]}"

    def forget(self) -> None:
        """Forget this process's outcome, so that the next :meth:`built_or_reason` tries again."""
        self._outcome = self._auto = None

    def required(self, choice: str) -> Any:
        """The module, built on first use; an :class:`AttnlabError` saying what the build needs when
        it cannot be built (``choice`` is the setting that asked for it, ``ATTNLAB_DECODE=cpp``)."""
        module, reason = self.built_or_reason()
        if module is None:
            raise AttnlabError(f"{choice} could not build {self.what} ({reason}); it needs {self.needs}, or set "
                               f"{self.skip} for {self.instead}")
        return module

    def auto(self) -> Any:
        """The module where this machine can build it (:func:`can_build_native`), else None. A build
        that fails all the same is one warning line, once per process."""
        if self._auto is None:
            module = None
            if can_build_native():
                module, reason = self.built_or_reason()
                if module is None:
                    warn(f"could not build {self.what} ({reason}); {self.fallback} ({self.skip} skips the attempt)")
            self._auto = (module,)
        return self._auto[0]

    def built_or_reason(self) -> tuple[Any, str]:
        """(the module, "") or (None, the first line of why it could not be built); the first call
        builds (said on stderr) or loads the build, later calls return the same outcome."""
        if self._outcome is None:
            self._outcome = self._build()
        return self._outcome

    def _build(self) -> tuple[Any, str]:
        from torch.utils import cpp_extension

        try:
            name = self.name()
        except OSError as e:  # a broken install
            return None, f"cannot read {self.source} ({e.strerror})"
        try:
            folder: Path | None = Path(cpp_extension._get_build_directory(name, False))
        except Exception:  # a private helper: if it moves, say "compiling" every time rather than fail
            folder = None
        waits = folder is not None and self._clear_stale_lock(folder / "lock")
        if not waits and (folder is None or not (folder / f"{name}.so").exists()):
            print(f"attnlab: compiling {self.what}, once (about {self.seconds} s; {self.skip} skips it)",
                  file=sys.stderr, flush=True)
        try:
            return cpp_extension.load(name=name, sources=[str(self.source)], extra_cflags=list(self.cflags),
                                      extra_ldflags=list(self.ldflags)), ""
        except Exception as e:  # no compiler, no ninja, a failed build: one line, and the way back
            return None, (str(e).strip().splitlines() or [type(e).__name__])[0][:200]

    def _clear_stale_lock(self, lock: Path) -> bool:
        """``torch.utils.cpp_extension`` holds a lock file while it builds and waits, without end,
        while one exists; a build killed outright (``kill -9``) leaves it behind. Remove one that no
        process holds (or, where that cannot be seen, one older than :data:`STALE_LOCK_S`); say so
        when a live one makes this process wait for another's build (then True)."""
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            return False
        held = _lock_held(lock)
        if not (held if held is not None else age <= STALE_LOCK_S):
            lock.unlink(missing_ok=True)
            print(f"attnlab: removed {lock}, left by a build of {self.what} that did not finish "
                  f"(started {age / 60:.0f} minutes ago)", file=sys.stderr, flush=True)
            return False
        print(f"attnlab: waiting for another process's build of {self.what} (it holds {lock}; "
              "if no other is running, delete that file)", file=sys.stderr, flush=True)
        return True


def warn(text: str) -> None:
    """One warning line on stderr, ``attnlab: warning: TEXT``: a native path that cannot serve, and
    what runs instead."""
    print(f"attnlab: warning: {text}", file=sys.stderr, flush=True)


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


ATTENTION_ENV = "ATTNLAB_ATTENTION"
ADAMW_ENV = "ATTNLAB_ADAMW"
BACKENDS = ("auto", "torch", "cpp")  # the choices of ATTNLAB_ATTENTION and ATTNLAB_ADAMW


def backend_choice(name: str, choices: tuple[str, ...], default: str, environ: Mapping[str, str] | None) -> str:
    """The value of the environment setting ``name`` (``choices[0]``, ``auto``, when unset or
    empty), checked against ``choices``; an :class:`AttnlabError` naming the ``default``'s meaning
    and the other values otherwise. Serves ``ATTNLAB_ATTENTION`` and ``ATTNLAB_ADAMW`` here and ``ATTNLAB_DECODE``
    (:func:`attnlab.models.configs.decode_backend`)."""
    value = (os.environ if environ is None else environ).get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise AttnlabError(f"{name}={value!r} is not one of {', '.join(choices)}; unset it for the default "
                           f"({default}), or set it to {' or '.join(choices[1:])}")
    return value


def attention_backend(environ: Mapping[str, str] | None = None) -> str:
    """What runs causal self-attention over short windows on the CPU (:mod:`attnlab.attention_kernel`),
    from ``ATTNLAB_ATTENTION``: ``auto`` (the default: the C++ kernel where this machine can build
    it, else PyTorch's), ``torch`` (PyTorch's kernels always) or ``cpp`` (an error where it cannot
    be built). The command line checks it before any work starts."""
    return backend_choice(ATTENTION_ENV, BACKENDS, "the C++ kernel where it can be built, else PyTorch's", environ)


def adamw_backend(environ: Mapping[str, str] | None = None) -> str:
    """What runs AdamW's step of float32 tensors on the CPU (:mod:`attnlab.engine.adamw_kernel`),
    from ``ATTNLAB_ADAMW``: ``auto`` (the default: the C++ step where this machine can build it and
    it reproduces torch's bit for bit, else torch's), ``torch`` or ``cpp`` (an error where it cannot
    serve). The command line checks it before any work starts."""
    return backend_choice(ADAMW_ENV, BACKENDS, "the C++ step where it can be built and matches torch's, else "
                          "torch's", environ)
