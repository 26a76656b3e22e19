"""Fixtures of the data tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def run_cli(capsys) -> Callable[[Callable[[], int]], tuple[int, str]]:
    """``run_cli(call)``: run a CLI call, check it printed no traceback, return ``(exit code, stderr)``."""

    def run(call: Callable[[], int]) -> tuple[int, str]:
        rc = call()
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return rc, err

    return run
