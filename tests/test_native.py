"""Building attnlab's C++ extensions (:mod:`attnlab.native`): one build folder per source file and
content, and the lock file a killed build leaves behind."""

import os
import time
from pathlib import Path

import pytest

from attnlab import native
from attnlab.native import NativeBuild


def build_of(source: Path, **flags) -> NativeBuild:
    return NativeBuild(source, "attnlab_test", "the test extension", "NOTHING=1", instead="nothing",
                       fallback="doing without", **flags)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="open files are seen in /proc (Linux)")
def test_a_lock_that_no_process_holds_is_removed_and_a_held_one_waited_for(tmp_path, capsys):
    build = build_of(tmp_path / "x.cpp")
    lock = tmp_path / "lock"
    assert build._clear_stale_lock(lock) is False  # none: nothing to say
    assert capsys.readouterr().err == ""
    fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # as torch's builder holds it
    try:
        assert build._clear_stale_lock(lock) is True  # this process waits
    finally:
        os.close(fd)
    assert lock.exists() and f"waiting for another process's build of the test extension (it holds {lock}; if " \
        "no other is running, delete that file)" in capsys.readouterr().err
    assert build._clear_stale_lock(lock) is False  # its builder was killed: nobody holds it
    assert not lock.exists()
    assert f"removed {lock}, left by a build of the test extension that did not finish (started 0 minutes ago)" in \
        capsys.readouterr().err


def test_where_open_files_cannot_be_seen_a_lock_is_stale_after_ten_minutes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(native, "_lock_held", lambda lock: None)
    build = build_of(tmp_path / "x.cpp")
    lock = tmp_path / "lock"
    lock.touch()
    build._clear_stale_lock(lock)
    assert lock.exists() and "waiting for another process's build" in capsys.readouterr().err
    old = time.time() - native.STALE_LOCK_S - 120
    os.utime(lock, (old, old))
    build._clear_stale_lock(lock)
    assert not lock.exists() and "that did not finish (started 12 minutes ago)" in capsys.readouterr().err


def test_each_source_file_and_content_builds_in_its_own_folder(tmp_path):
    # Two installs (two checkouts, two versions) would otherwise rebuild over each other's build.
    names = {}
    for where, text in (("a", "int x;"), ("b", "int x;"), ("a2", "int y;")):
        source = tmp_path / where / "ext.cpp"
        source.parent.mkdir()
        source.write_text(text)
        names[where] = build_of(source).name()
        assert build_of(source).name() == names[where]  # the same file: the same folder
    assert len(set(names.values())) == 3 and all(n.startswith("attnlab_test_") for n in names.values())
    (tmp_path / "a2" / "ext.cpp").write_text("int z;")  # an edit: a new folder
    assert build_of(tmp_path / "a2" / "ext.cpp").name() != names["a2"]


def test_a_missing_source_is_a_reason_not_an_exception(tmp_path):
    module, reason = build_of(tmp_path / "missing.cpp").built_or_reason()
    assert module is None and reason.startswith(f"cannot read {tmp_path / 'missing.cpp'}")


def test_a_failed_build_is_one_line_and_remembered(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    calls = []

    def fail(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("Ninja is required to load C++ extensions\n(and a long traceback)")

    monkeypatch.setattr(cpp_extension, "load", fail)
    source = tmp_path / "ext.cpp"
    source.write_text("int x;")
    build = build_of(source, cflags=("-O3",), ldflags=("-lm",))
    assert build.built_or_reason() == (None, "Ninja is required to load C++ extensions")
    assert build.built_or_reason() == (None, "Ninja is required to load C++ extensions") and len(calls) == 1
    assert calls[0]["extra_cflags"] == ["-O3"] and calls[0]["extra_ldflags"] == ["-lm"]
    build.forget()
    build.built_or_reason()
    assert len(calls) == 2


def test_required_is_one_error_line_and_auto_one_warning_then_none(tmp_path, monkeypatch, capsys):
    from attnlab.errors import AttnlabError

    build = build_of(tmp_path / "missing.cpp", needs="a compiler")
    with pytest.raises(AttnlabError) as err:
        build.required("NOTHING=0")
    assert str(err.value) == (f"NOTHING=0 could not build the test extension (cannot read {tmp_path / 'missing.cpp'} "
                              "(No such file or directory)); it needs a compiler, or set NOTHING=1 for nothing")
    monkeypatch.setattr(native, "can_build_native", lambda: True)
    assert build.auto() is None and build.auto() is None
    assert capsys.readouterr().err.count("attnlab: warning: could not build the test extension (cannot read") == 1
    monkeypatch.setattr(native, "can_build_native", lambda: False)  # where it cannot: no attempt, no word
    build.forget()
    monkeypatch.setattr(build, "built_or_reason", lambda: pytest.fail("no build was to be tried"))
    assert build.auto() is None and capsys.readouterr().err == ""
