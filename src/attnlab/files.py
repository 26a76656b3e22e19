"""Files written so that a reader never sees half of one, and their checksums.

:func:`writing_atomically` writes through a scratch file beside the destination and renames it
into place when the block ends (a failed block leaves nothing, not even the folders it made);
:func:`write_atomic` and :func:`write_json` are its one-call forms for text. Checkpoints, run
logs, downloads, sweep tables and reports all write this way. :func:`file_digest` hashes a file
of any size in 1 MiB reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["removing_new_folders_on_failure", "writing_atomically", "write_atomic", "write_json", "save_figure",
           "file_digest",
           "fsync_file", "fsync_dir"]

CHUNK = 1 << 20


@contextlib.contextmanager
def removing_new_folders_on_failure(folder: str | Path) -> Iterator[Path]:
    """Create ``folder`` (and missing parents); if the block fails, remove the ones it created
    that are empty again, so that a failed attempt leaves no empty folders behind."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for p in created:
            try:
                p.rmdir()
            except OSError:  # not empty (e.g. it holds a resumable download) or already gone
                break
        raise


@contextlib.contextmanager
def writing_atomically(dest: str | Path) -> Iterator[BinaryIO]:
    """Write ``dest`` through a scratch file beside it (a name unique to this process), synced to
    disk and renamed to ``dest`` when the block ends.

    If the block fails, the scratch file and any folders created for it are deleted, so a
    reader never sees half a file and a failed attempt leaves nothing behind.
    """
    dest = Path(dest)
    with removing_new_folders_on_failure(dest.parent):
        scratch = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with open(scratch, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(scratch, dest)
        except BaseException:
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
