"""The tests of ``tools/``: each script runs as its users run it, in its own process."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def run_tool(name: str, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python tools/NAME ARGS...`` with its output captured as text; ``kwargs`` go to ``subprocess.run``."""
    return subprocess.run([sys.executable, str(TOOLS / name), *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.fixture
def tool() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`run_tool`: ``tool("optimizer_step.py", "--shape", "char")``."""
    return run_tool
