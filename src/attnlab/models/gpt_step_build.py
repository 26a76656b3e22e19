"""Building and loading DialogueGPT's C++ decoding step (``gpt_step.cpp``; :mod:`attnlab.models.gpt_step`).

:data:`STEP` builds it on first use (about 20 s, said on stderr; :mod:`attnlab.native`), then
loads it from ``TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``) in a tenth of a
second. ``ATTNLAB_DECODE`` chooses (:func:`native_for`): ``auto`` (the default) uses it where this
machine has what the build takes (:func:`~attnlab.native.can_build_native`) and decodes in Python
elsewhere or after a failed build (one warning line); ``python`` never builds; ``cpp`` is an error
where it cannot be built.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from attnlab import native
from attnlab.errors import AttnlabError
from attnlab.models.configs import DECODE_ENV

__all__ = ["STEP", "native_for", "native_step"]

STEP = native.NativeBuild(Path(__file__).with_name("gpt_step.cpp"), "attnlab_gpt_step", "the C++ decoding step",
                          f"{DECODE_ENV}=python")


def native_step() -> Any:
    """The C++ one-row step's module (``gpt_step.cpp``), built on first use; an :class:`AttnlabError`
    that says what it needs when it cannot be built."""
    module, reason = STEP.built_or_reason()
    if module is None:
        raise AttnlabError(f"{DECODE_ENV}=cpp could not build the C++ decoding step ({reason}); it needs a C++ "
                           f"compiler and ninja (pip install ninja), or set {DECODE_ENV}=python for the Python "
                           "step")
    return module


@functools.cache
def _auto_native() -> Any:
    """``auto``'s choice: the C++ step where this machine can build it, else None (Python). A build
    that fails all the same is one warning line, once per process."""
    if not native.can_build_native():
        return None
    module, reason = STEP.built_or_reason()
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
