"""Checks of a command's numeric options once they are parsed, worded the same everywhere.

A benchmark or a lab experiment takes sizes (``--batch``, ``--dim``, ``--heads``), counts
(``--repeats``), rates (``--dropout``) and the like. Unchecked, a value out of range fails deep
inside PyTorch with a traceback (``--heads 0``: ``ZeroDivisionError``) or runs a model that cannot
exist (``--layers -1`` builds none). Each check here raises :class:`~attnlab.errors.AttnlabError`, which
the command line prints as one ``error:`` line naming the option, its value and the rule (exit
code 2). An option left at ``None`` (unset, "the default choice") passes.

This module imports no torch.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from attnlab.errors import AttnlabError

__all__ = ["require_at_least", "require_divisible", "require_fraction", "require_positive"]


def _value(args: argparse.Namespace, name: str) -> Any:
    """The value of option ``--name`` (``mlp-dim`` reads ``args.mlp_dim``)."""
    return getattr(args, name.replace("-", "_"))


def _refuse(args: argparse.Namespace, names: tuple[str, ...], fine: Callable[[Any], bool],
            rule: Callable[[Any], str]) -> None:
    """Raise for the first value of the options ``--NAME`` that is not ``fine``, saying what it must
    be (``rule`` of the value); an option of several values (``nargs``) has each checked."""
    for name in names:
        value = _value(args, name)
        several = isinstance(value, list)
        for one in value if several else [value]:
            if one is not None and not fine(one):
                what = f"every --{name} value" if several else f"--{name}"
                raise AttnlabError(f"{what} must be {rule(one)}, got {one}")


def require_at_least(args: argparse.Namespace, minimum: int, *names: str, why: str = "") -> None:
    """Refuse any of the options ``--NAME`` that is below ``minimum`` (or, a number with a
    fraction, not finite); ``why`` says what needs the minimum."""
    because = f" ({why})" if why else ""
    _refuse(args, names, lambda v: math.isfinite(v) and v >= minimum,
            lambda v: f"{'a finite number ' * isinstance(v, float)}>= {minimum}{because}")


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Refuse any of the options ``--NAME`` (numbers) that is not a finite number above 0."""
    _refuse(args, names, lambda v: math.isfinite(v) and v > 0, lambda v: "a number above 0")


def require_fraction(args: argparse.Namespace, *names: str) -> None:
    """Refuse any of the options ``--NAME`` (probabilities such as a dropout rate) outside [0, 1)."""
    _refuse(args, names, lambda v: 0.0 <= v < 1.0, lambda v: "at least 0 and below 1")


def require_divisible(args: argparse.Namespace, name: str, by: str) -> None:
    """Refuse ``--NAME`` unless the option ``--BY`` divides it (a width split among heads, an image
    into patches). Check both with :func:`require_at_least` first."""
    value, divisor = _value(args, name), _value(args, by)
    if value % divisor:
        raise AttnlabError(f"--{name} {value} must be divisible by --{by} {divisor}")
