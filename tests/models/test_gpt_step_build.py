"""Building the C++ decoding step: what ``auto`` does where the build works, fails or cannot start,
and the lock file a killed build leaves behind."""

import os
import time
from pathlib import Path

import pytest
from gpt_fixtures import one_thread, small_gpt  # noqa: F401  (one_thread: an autouse fixture)

from attnlab.models.gpt_step import DecodeStep
from attnlab.models.gpt_step_build import can_build_native

needs_compiler = pytest.mark.skipif(not can_build_native(),
                                    reason="the C++ step needs a C++ compiler, ninja and Python's headers")


@pytest.fixture
def failing_build(monkeypatch):
    """Every build fails as one without ninja does (a long message); the cached outcome is
    forgotten before and after, so the next use loads the real build."""
    from torch.utils import cpp_extension

    from attnlab.models import gpt_step_build

    def fail(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions\n(and a long traceback)")

    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(gpt_step_build, "can_build_native", lambda: True)  # the build is tried, as where it can be
    for cached in (gpt_step_build._built_or_reason, gpt_step_build._auto_native):
        cached.cache_clear()
    yield
    for cached in (gpt_step_build._built_or_reason, gpt_step_build._auto_native):
        cached.cache_clear()


def test_a_failed_build_says_what_it_needs(failing_build):
    from attnlab.errors import AttnlabError

    with pytest.raises(AttnlabError) as err:
        DecodeStep(small_gpt(), backend="cpp")
    message = str(err.value)
    assert "could not build the C++ decoding step (Ninja is required to load C++ extensions)" in message
    assert "pip install ninja" in message and "ATTNLAB_DECODE=python" in message and "\n" not in message


def test_auto_decodes_in_python_after_one_warning_when_the_build_fails(failing_build, capsys):
    # The default must work on any machine: a failed build is one line on stderr, once, then Python.
    model = small_gpt(seed=6)
    steps = [DecodeStep(model) for _ in range(2)]
    assert [s.backend for s in steps] == ["python", "python"] and steps[0]._native is None
    err = capsys.readouterr().err
    assert err.count("warning: could not build the C++ decoding step (Ninja is required") == 1
    assert "decoding in Python (ATTNLAB_DECODE=python skips the attempt)" in err


def test_auto_and_python_never_build_where_the_machine_cannot(monkeypatch):
    from torch.utils import cpp_extension

    from attnlab.models import gpt_step_build

    def build(**kwargs):
        raise AssertionError("no build was to be tried")

    monkeypatch.setattr(cpp_extension, "load", build)
    monkeypatch.setattr(gpt_step_build, "can_build_native", lambda: False)
    gpt_step_build._auto_native.cache_clear()
    try:
        assert DecodeStep(small_gpt()).backend == "python"
        assert DecodeStep(small_gpt(), backend="python").backend == "python"
    finally:
        gpt_step_build._auto_native.cache_clear()


@needs_compiler
def test_auto_runs_the_cpp_step_where_it_can_be_built():
    assert DecodeStep(small_gpt()).backend == "cpp" and DecodeStep(small_gpt())._native is not None
    assert DecodeStep(small_gpt(), backend="python").backend == "python"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="open files are seen in /proc (Linux)")
def test_a_lock_that_no_process_holds_is_removed_and_a_held_one_waited_for(tmp_path, capsys):
    from attnlab.models.gpt_step_build import _clear_stale_lock

    lock = tmp_path / "lock"
    assert _clear_stale_lock(lock) is False  # none: nothing to say
    assert capsys.readouterr().err == ""
    fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # as torch's builder holds it
    try:
        assert _clear_stale_lock(lock) is True  # this process waits
    finally:
        os.close(fd)
    assert lock.exists() and f"waiting for another process's build of the C++ decoding step (it holds {lock}; if " \
        "no other is running, delete that file)" in capsys.readouterr().err
    assert _clear_stale_lock(lock) is False  # its builder was killed: nobody holds it
    assert not lock.exists()
    assert f"removed {lock}, left by a build of the C++ decoding step that did not finish (started 0 minutes ago)" in \
        capsys.readouterr().err


def test_where_open_files_cannot_be_seen_a_lock_is_stale_after_ten_minutes(tmp_path, capsys, monkeypatch):
    from attnlab.models import gpt_step_build

    monkeypatch.setattr(gpt_step_build, "_lock_held", lambda lock: None)
    lock = tmp_path / "lock"
    lock.touch()
    gpt_step_build._clear_stale_lock(lock)
    assert lock.exists() and "waiting for another process's build" in capsys.readouterr().err
    old = time.time() - gpt_step_build.STALE_LOCK_S - 120
    os.utime(lock, (old, old))
    gpt_step_build._clear_stale_lock(lock)
    assert not lock.exists() and "that did not finish (started 12 minutes ago)" in capsys.readouterr().err


def test_each_source_file_and_content_builds_in_its_own_folder(tmp_path, monkeypatch):
    # Two installs (two checkouts, two versions) would otherwise rebuild over each other's build.
    from attnlab.models import gpt_step_build

    names = {}
    for where, text in (("a", "int x;"), ("b", "int x;"), ("a2", "int y;")):
        source = tmp_path / where / "gpt_step.cpp"
        source.parent.mkdir()
        source.write_text(text)
        monkeypatch.setattr(gpt_step_build, "_SOURCE", source)
        names[where] = gpt_step_build._name()
        assert gpt_step_build._name() == names[where]  # the same file: the same folder
    assert len(set(names.values())) == 3 and all(n.startswith("attnlab_gpt_step_") for n in names.values())
    (tmp_path / "a2" / "gpt_step.cpp").write_text("int z;")  # an edit: a new folder
    assert gpt_step_build._name() != names["a2"]
    gpt_step_build._built_or_reason.cache_clear()
    monkeypatch.setattr(gpt_step_build, "_SOURCE", tmp_path / "missing.cpp")
    try:
        module, reason = gpt_step_build._built_or_reason()
    finally:
        gpt_step_build._built_or_reason.cache_clear()
    assert module is None and reason.startswith(f"cannot read {tmp_path / 'missing.cpp'}")
