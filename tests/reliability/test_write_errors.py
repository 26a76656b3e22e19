"""Every writer goes through attnlab.files: what the system refuses (a full disk, a read-only or
forbidden folder, a file or folder in the way) is one AttnlabError naming the path and what to
do, and the scratch file and the folders made for it are gone."""

from __future__ import annotations

import errno
import os

import pytest

import attnlab.files
from attnlab.errors import AttnlabError
from attnlab.files import make_folder, write_atomic, write_error, writing_atomically


def refuse(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), filename) if filename else OSError(code, os.strerror(code))


@pytest.mark.parametrize("code,words", [
    (errno.ENOSPC, "no space left on the disk holding {tmp}; free some space there (or write somewhere else) "
                   "and run the same command again"),
    (errno.EDQUOT, "no space left on the disk holding {tmp}"),
    (errno.EROFS, "{tmp} is on a read-only file system; write somewhere else"),
    (errno.EACCES, "permission denied in {tmp}; write to a folder you may write to"),
    (errno.EPERM, "permission denied in {tmp}"),
])
def test_a_refused_write_is_one_message_and_leaves_nothing(tmp_path, code, words):
    target = tmp_path / "new" / "deeper" / "out.png"
    with pytest.raises(AttnlabError) as info:
        with writing_atomically(target) as f:
            f.write(b"half of it")
            raise refuse(code)  # as f.write or os.fsync would
    assert str(info.value).startswith(f"cannot write {target}: " + words.format(tmp=tmp_path))
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one line, no chained traceback
    assert list(tmp_path.iterdir()) == []  # no scratch file, no folders made for it


def test_a_folder_or_a_file_in_the_way(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(AttnlabError, match=f"^cannot write {tmp_path}/folder: a folder of that name exists; name a "
                                           "file to write"):
        write_atomic(tmp_path / "folder", "text")
    for target in (tmp_path / "file" / "out.txt", tmp_path / "file" / "sub" / "out.txt"):
        with pytest.raises(AttnlabError, match=f"^cannot write {target}: {tmp_path}/file is a file, not a folder; "
                                               "choose another path, or move that file away$"):
            write_atomic(target, "text")
    with pytest.raises(AttnlabError, match=f"^cannot write {tmp_path}/file: {tmp_path}/file is a file, not a folder"):
        make_folder(tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"] and (tmp_path / "file").read_text() == "x"


def test_a_read_only_folder_where_even_removing_the_scratch_file_fails(tmp_path, monkeypatch):
    def read_only(path, mode="r", *args, **kwargs):
        raise refuse(errno.EROFS, str(path))

    monkeypatch.setattr(attnlab.files, "open", read_only, raising=False)
    with pytest.raises(AttnlabError, match=f"^cannot write {tmp_path}/out.json: {tmp_path} is on a read-only file"):
        write_atomic(tmp_path / "out.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_atomic(target, "old\n")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))

    monkeypatch.setattr(attnlab.files.os, "replace", full)
    with pytest.raises(AttnlabError, match="no space left"):
        write_atomic(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_other_errors_in_the_block_stay_what_they_are(tmp_path):
    """A file the block reads elsewhere is not the file being written: its error is not renamed."""
    elsewhere = refuse(errno.EACCES, str(tmp_path.parent / "input.txt"))
    with pytest.raises(OSError) as info:
        with writing_atomically(tmp_path / "out" / "x.txt"):
            raise elsewhere
    assert info.value is elsewhere and list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="Input/output error"):  # not a refusal write_error explains
        with writing_atomically(tmp_path / "x.txt"):
            raise refuse(errno.EIO)


def test_write_error_of_an_unexpected_errno_still_names_the_path(tmp_path):
    assert str(write_error(refuse(errno.ENAMETOOLONG), tmp_path / "x")) == (
        f"cannot write {tmp_path}/x: File name too long; choose another path")
