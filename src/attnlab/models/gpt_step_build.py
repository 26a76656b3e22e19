"""Building and loading DialogueGPT's C++ decoding step (``gpt_step.cpp``; :mod:`attnlab.models.gpt_step`).

:data:`STEP` builds it on first use (about 20 s, said on stderr; :mod:`attnlab.native`), then
loads it from ``TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``) in a tenth of a
second. ``ATTNLAB_DECODE`` chooses (:func:`native_for`): ``auto`` (the default) uses it where this
machine has what the build takes (:func:`~attnlab.native.can_build_native`) and decodes in Python
elsewhere or after a failed build (one warning line); ``python`` never builds; ``cpp`` is an error
where it cannot be built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab import native
from attnlab.models.configs import DECODE_ENV

__all__ = ["STEP", "native_for", "native_step"]

STEP = native.NativeBuild(Path(__file__).with_name("gpt_step.cpp"), "attnlab_gpt_step", "the C++ decoding step",
                          f"{DECODE_ENV}=python", instead="the Python step", fallback="decoding in Python")


def native_step() -> Any:
    """The C++ one-row step's module (``gpt_step.cpp``), built on first use; an :class:`AttnlabError`
    that says what it needs when it cannot be built."""
    return STEP.required(f"{DECODE_ENV}=cpp")


def native_for(backend: str) -> Any:
    """The C++ step's module that ``backend`` (``auto``, ``python`` or ``cpp``, as from
    :func:`decode_backend`) decodes with, or None for Python. Building it (the first time) happens
    here, so callers that time decoding call this before the clock starts."""
    if backend == "cpp":
        return native_step()
    return STEP.auto() if backend == "auto" else None
