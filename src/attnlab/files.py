"""Files written so that a reader never sees half of one, and their checksums.

:func:`writing_atomically` writes through a scratch file beside the destination and renames it
into place when the block ends (a failed block leaves nothing, not even the folders it made);
:func:`write_atomic` and :func:`write_json` are its one-call forms for text. Checkpoints, run
logs, downloads, sweep tables and reports all write this way. :func:`file_digest` hashes a file
of any size in 1 MiB reads.

Every writer goes through here, so one place turns the operating system's refusals (a full
disk, a read-only folder, a file where a folder should be) into one :class:`AttnlabError` that
names the path and what to do (:func:`write_error`), after removing the scratch files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from attnlab.errors import AttnlabError

__all__ = ["cache_dir", "write_error", "make_folder", "removing_new_folders_on_failure", "writing_atomically",
           "write_atomic", "write_json", "save_figure", "file_digest", "fsync_file", "fsync_dir"]

CHUNK = 1 << 20

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_IN_THE_WAY = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR}
WRITE_ERRNOS = frozenset(_FULL | _DENIED | _IN_THE_WAY)  # the refusals write_error explains


def cache_dir() -> Path:
    """attnlab's cache folder: ``$ATTNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/attnlab`` (by default
    ``~/.cache/attnlab``). Tokenized texts, token streams and the measured CPU peak live there."""
    env = os.environ.get("ATTNLAB_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "attnlab"


def _nearest_folder(path: Path) -> Path:
    """The deepest existing folder on the way to ``path`` (where the write was attempted)."""
    for p in (path.parent, *path.parent.parents):
        if p.is_dir():
            return p
    return path.parent


def _file_in_the_way(path: Path, exc: OSError) -> Path | None:
    """The first existing non-folder where ``path`` needs a folder (``a/file/x.png``: ``a/file``;
    ``path`` itself when creating it as a folder failed)."""
    mine = [path] if exc.errno in (errno.EEXIST, errno.ENOTDIR) else []
    for p in [*reversed(path.parents), *mine]:
        if p.exists() and not p.is_dir():
            return p
    return None


def _refused_here(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` is a write refusal (:data:`WRITE_ERRNOS`) about ``folder``, something in it
    or a folder on the way to it (not, say, a file the block was reading elsewhere)."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return False
    if exc.filename is None:  # write(), fsync(): the file being written
        return True
    where, folder = Path(os.path.abspath(exc.filename)), Path(os.path.abspath(folder))
    return where == folder or folder in where.parents or where in folder.parents


def write_error(exc: OSError, path: str | Path) -> AttnlabError:
    """The one message for ``exc``, met while writing ``path``: the path, the cause, what to do."""
    path = Path(path)
    folder = _nearest_folder(path)
    blocker = _file_in_the_way(path, exc)
    if exc.errno in _FULL:
        why, fix = (f"no space left on the disk holding {folder}",
                    "free some space there (or write somewhere else) and run the same command again")
    elif exc.errno == errno.EROFS:
        why, fix = f"{folder} is on a read-only file system", "write somewhere else"
    elif exc.errno in _DENIED:
        why, fix = f"permission denied in {folder}", "write to a folder you may write to"
    elif blocker is not None:
        why, fix = f"{blocker} is a file, not a folder", "choose another path, or move that file away"
    elif path.is_dir() or exc.errno == errno.EISDIR:
        why, fix = "a folder of that name exists", "name a file to write (e.g. one inside that folder)"
    else:
        why, fix = exc.strerror or str(exc), "choose another path"
    return AttnlabError(f"cannot write {path}: {why}; {fix}")


def make_folder(folder: str | Path, *, named: str | Path | None = None) -> Path:
    """Create ``folder`` and its missing parents; a refusal is :func:`write_error`'s one message
    about ``named`` (default: ``folder``), the path the caller means to write."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, folder if named is None else named) from None
    return folder


@contextlib.contextmanager
def removing_new_folders_on_failure(folder: str | Path, *, named: str | Path | None = None) -> Iterator[Path]:
    """Create ``folder`` (and missing parents); if the block fails, remove the ones it created
    that are empty again, so that a failed attempt leaves no empty folders behind. A write the
    system refuses (full disk, read-only, ...; :data:`WRITE_ERRNOS`) is :func:`write_error`'s one
    message about ``named`` (default: ``folder``)."""
    folder = Path(folder)
    named = folder if named is None else named
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    make_folder(folder, named=named)
    try:
        yield folder
    except BaseException as exc:  # (the message is made once the new folders are gone)
        for p in created:
            try:
                p.rmdir()
            except OSError:  # not empty (e.g. it holds a resumable download) or already gone
                break
        if isinstance(exc, OSError) and _refused_here(exc, folder):
            raise write_error(exc, named) from None
        raise


@contextlib.contextmanager
def writing_atomically(dest: str | Path) -> Iterator[BinaryIO]:
    """Write ``dest`` through a scratch file beside it (a name unique to this process), synced to
    disk and renamed to ``dest`` when the block ends.

    If the block fails, the scratch file and any folders created for it are deleted, so a
    reader never sees half a file and a failed attempt leaves nothing behind. A write the system
    refuses (a full disk, a read-only folder, ``dest`` a folder, a file where a folder should be)
    raises :func:`write_error`'s one message naming ``dest``.
    """
    dest = Path(dest)
    if dest.is_dir():
        raise write_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), dest)
    with removing_new_folders_on_failure(dest.parent, named=dest):
        scratch = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with open(scratch, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(scratch, dest)
        except BaseException:  # a refusal becomes write_error's message once the new folders are gone
            with contextlib.suppress(OSError):  # e.g. EROFS: nothing was created to remove
                scratch.unlink(missing_ok=True)
            raise


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically: a reader sees the old file or the new
    one, never half of either."""
    with writing_atomically(path) as f:
        f.write(text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    """:func:`write_atomic` of ``data`` as indented JSON."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """A Matplotlib figure written atomically, in the format its suffix names (``.png``, ``.svg``)."""
    path = Path(path)
    with writing_atomically(path) as f:
        fig.savefig(f, format=path.suffix.lstrip(".").lower() or "png", **savefig_kwargs)
    return path


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest (``"md5"``, ``"sha256"``, ...) of a file's bytes."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    """Make a file written earlier durable (its bytes on disk before a rename publishes it)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename into it) durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
