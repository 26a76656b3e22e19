"""``attnlab.options``: each check passes what its rule allows and refuses the rest with one
message naming the option, the rule and the value."""

from __future__ import annotations

import argparse
import math

import pytest

from attnlab.errors import AttnlabError
from attnlab.options import require_at_least, require_divisible, require_fraction, require_positive


def ns(**values) -> argparse.Namespace:
    return argparse.Namespace(**values)


def refusal(check, *args, **kwargs) -> str:
    with pytest.raises(AttnlabError) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_at_least_names_the_first_option_below_the_minimum():
    args = ns(batch=4, mlp_dim=0, heads=-1, threads=None)
    require_at_least(args, 1, "batch", "threads")  # None is "unset": the default choice
    require_at_least(args, 0, "mlp-dim")
    assert refusal(require_at_least, args, 1, "batch", "mlp-dim", "heads") == "--mlp-dim must be >= 1, got 0"
    assert refusal(require_at_least, ns(vocab=2), 3, "vocab", why="ids 0-2 are the special tokens") == (
        "--vocab must be >= 3 (ids 0-2 are the special tokens), got 2")


@pytest.mark.parametrize("value", [math.inf, math.nan, -0.5])
def test_at_least_refuses_a_number_that_is_not_finite(value):
    require_at_least(ns(length_penalty=0.0), 0, "length-penalty")
    assert refusal(require_at_least, ns(length_penalty=value), 0, "length-penalty") == (
        f"--length-penalty must be a finite number >= 0, got {value}")


def test_an_option_of_several_values_has_each_checked():
    require_at_least(ns(lengths=[1, 64]), 1, "lengths")
    assert refusal(require_at_least, ns(lengths=[64, 0, 256]), 1, "lengths") == (
        "every --lengths value must be >= 1, got 0")
    assert refusal(require_positive, ns(radii=[0.5, math.nan]), "radii") == (
        "every --radii value must be a number above 0, got nan")


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_positive_refuses_zero_negatives_and_non_finite_numbers(value):
    assert refusal(require_positive, ns(min_ms=value), "min-ms") == f"--min-ms must be a number above 0, got {value}"


def test_positive_passes_finite_numbers_above_zero():
    require_positive(ns(min_ms=1e-9, array_mib=1024.0), "min-ms", "array-mib")


@pytest.mark.parametrize("value, ok", [(0.0, True), (0.5, True), (0.999, True), (1.0, False), (-0.1, False),
                                       (math.nan, False)])
def test_fraction_is_zero_up_to_but_not_one(value, ok):
    if ok:
        require_fraction(ns(dropout=value), "dropout")
    else:
        assert refusal(require_fraction, ns(dropout=value), "dropout") == (
            f"--dropout must be at least 0 and below 1, got {value}")


def test_divisible_names_both_options():
    require_divisible(ns(dim=128, heads=4), "dim", "heads")
    assert refusal(require_divisible, ns(image_size=32, patch=5), "image-size", "patch") == (
        "--image-size 32 must be divisible by --patch 5")
