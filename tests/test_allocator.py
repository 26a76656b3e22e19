"""attnlab.allocator: glibc keeps freed big blocks, so re-allocating big tensors maps (almost) no new pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from attnlab import allocator
from attnlab.errors import AttnlabError

glibc = pytest.mark.skipif(not allocator._is_glibc(), reason="mallopt is glibc's")

# Five "training steps", each allocating four 48 MiB tensors (over glibc's largest mmap threshold,
# 32 MiB) and freeing them; prints the page faults of five more steps.
FAULTS = """
import json, resource, sys
from attnlab import allocator
applied = allocator.keep_freed_memory({"ATTNLAB_MALLOC": sys.argv[1]})
import torch  # after, as in the command line: PyTorch reads its huge-page switch when it starts
def step():
    a = torch.ones(12 << 20); b = a * 2; c = b + a; d = torch.zeros(12 << 20)
    del a, b, c, d
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(json.dumps({"applied": applied, "faults": faults(), "note": allocator.note()}))
"""


def _later_steps(choice: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", FAULTS, choice], capture_output=True, text=True, check=True,
                         env={**env, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout)


@glibc
def test_kept_memory_is_reused_without_new_pages() -> None:
    kept, system = _later_steps("keep"), _later_steps("system")
    # 20 tensors of 12,288 pages of 4 KiB: glibc's own policy maps every one afresh (245,760 faults);
    # the kept heap reuses its blocks (measured 0 to 12,288: at most one tensor placed anew)
    assert system["applied"] is False and system["faults"] > 200_000 and system["note"] is None
    assert kept["applied"] is True and kept["faults"] < 50_000
    assert "ATTNLAB_MALLOC=system" in kept["note"] and "huge pages" in kept["note"]


@glibc
def test_auto_keeps_memory_only_on_a_machine_with_enough_ram(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_applied", False)  # restored after the test: this process's note stays off
    monkeypatch.setattr(allocator, "_ram", lambda: allocator.MIN_MEMORY - 1)
    assert allocator.keep_freed_memory({}) is False
    assert allocator.keep_freed_memory({"ATTNLAB_MALLOC": "auto"}) is False
    monkeypatch.setattr(allocator, "_ram", lambda: allocator.MIN_MEMORY)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc())
    assert allocator.keep_freed_memory({}) is True
    assert FakeLibc.calls[-2:] == [(-1, allocator.KEEP_BYTES), (-4, 0)]  # M_TRIM_THRESHOLD, M_MMAP_MAX


class FakeLibc:
    """Stands in for glibc in this process (the real mallopt runs in the subprocess tests)."""

    calls: list = []

    def mallopt(self, param: int, value: int) -> int:
        FakeLibc.calls.append((param, value))
        return 1


def test_an_unknown_choice_names_the_choices() -> None:
    with pytest.raises(AttnlabError, match="ATTNLAB_MALLOC=auto .*ATTNLAB_MALLOC=keep .*ATTNLAB_MALLOC=system"):
        allocator.keep_freed_memory({"ATTNLAB_MALLOC": "jemalloc"})


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_choice_is_the_default_as_for_the_other_switches(blank, monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_applied", False)  # as in the test above
    monkeypatch.setattr(allocator, "_ram", lambda: allocator.MIN_MEMORY - 1)  # auto leaves glibc alone here
    assert allocator.keep_freed_memory({"ATTNLAB_MALLOC": blank}) is False
    monkeypatch.setattr(allocator, "_ram", lambda: allocator.MIN_MEMORY)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc())
    assert allocator.keep_freed_memory({"ATTNLAB_MALLOC": blank}) is True  # auto keeps it here


def test_system_leaves_glibc_alone() -> None:
    assert allocator.keep_freed_memory({"ATTNLAB_MALLOC": "System "}) is False


def test_the_command_line_rejects_an_unknown_choice_with_exit_2() -> None:
    code = "import sys; from attnlab.cli import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", code, "data", "list"], capture_output=True, text=True,
                         env={**os.environ, "ATTNLAB_MALLOC": "nope"})
    assert out.returncode == 2 and "ATTNLAB_MALLOC='nope' is not a choice" in out.stderr
    assert "Traceback" not in out.stderr


HUGE = """
import json, os, sys
from attnlab import allocator
applied = allocator.keep_freed_memory({"ATTNLAB_MALLOC": sys.argv[1]})
child = allocator.without_policy(os.environ)
print(json.dumps([applied, os.environ.get("THP_MEM_ALLOC_ENABLE"), child.get("THP_MEM_ALLOC_ENABLE")]))
"""


def _huge(choice: str, **env: str) -> list:
    base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", HUGE, choice], capture_output=True, text=True, check=True,
                         env={**base, **env})
    return json.loads(out.stdout)


@glibc
def test_huge_pages_are_switched_on_before_torch_loads_unless_the_user_chose() -> None:
    assert _huge("keep") == [True, "1", None]  # set for this process, and left out of a "system" child's
    assert _huge("system") == [False, None, None]
    assert _huge("keep", THP_MEM_ALLOC_ENABLE="0") == [True, "0", "0"]  # the user's own choice stays
