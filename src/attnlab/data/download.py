"""Downloads that survive real networks: resume, checksum, progress, safe extraction.

``fetch_url`` streams into ``dest.partial`` (continuing it with an HTTP Range request if a
previous attempt was cut off), verifies the md5/sha256, then renames it to ``dest``.
``extract_archive`` unpacks .tar.gz/.tgz/.tar/.zip, refusing members that would land outside
the destination (absolute paths, ``..``, links pointing out).

A failed attempt leaves nothing behind but what lets the next one resume: the ``.partial``
file of an interrupted download. Folders created for the attempt are removed again when they
end up empty, a checksum mismatch deletes the download, and a failed extraction removes what it
had unpacked (it unpacks into a scratch folder first and moves the result into place).
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from attnlab.errors import AttnlabError
from attnlab.files import file_digest, removing_new_folders_on_failure

CHUNK = 1 << 20
TIMEOUT = 30.0  # seconds without data before giving up
PARTIAL = ".partial"  # suffix of an interrupted download, continued by the next attempt


def partial_path(dest: str | Path) -> Path:
    """Where the download of ``dest`` is kept until it is complete and verified: ``dest.partial``."""
    dest = Path(dest)
    return dest.with_name(dest.name + PARTIAL)


ELSEWHERE = "download it elsewhere and pass --data-dir PATH"  # the way out when attnlab cannot download


def _expected(md5: str | None, sha256: str | None) -> tuple[str, str] | None:
    if md5 and sha256:
        raise ValueError("give md5 or sha256, not both")
    if md5:
        return "md5", md5.lower()
    if sha256:
        return "sha256", sha256.lower()
    return None


def fetch_url(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
              desc: str | None = None, elsewhere: str = ELSEWHERE) -> Path:
    """Download ``url`` to ``dest`` (skipped if ``dest`` exists with the right checksum).

    A partial ``dest.partial`` from an interrupted attempt is continued with an HTTP Range
    request (or restarted if the server ignores ranges). A checksum mismatch deletes the download
    and raises ``AttnlabError``; so does an unreachable server. Each error ends with ``elsewhere``,
    what to do without attnlab's download. Whatever fails, only a non-empty ``dest.partial`` (and
    the folders holding it) stays behind.
    """
    dest = Path(dest)
    check = _expected(md5, sha256)
    if dest.exists():
        if check is None or file_digest(dest, check[0]) == check[1]:
            return dest
        dest.unlink()  # stale or damaged copy: download again
    part = partial_path(dest)
    old_part = dest.with_name(dest.name + ".part")  # the name attnlab used before
    if old_part.is_file() and not part.exists():
        os.replace(old_part, part)
    with removing_new_folders_on_failure(dest.parent):
        try:
            _download(url, dest, part, check, desc, elsewhere)
        except BaseException:
            if part.exists() and part.stat().st_size == 0:
                part.unlink()  # nothing to resume from
            raise
    return dest


def _download(url: str, dest: Path, part: Path, check: tuple[str, str] | None, desc: str | None,
              elsewhere: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "attnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .partial already holds the whole file
            response = None
        else:
            raise AttnlabError(f"server returned HTTP {exc.code} for URL: {url}; {elsewhere}") from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        raise AttnlabError(f"could not reach URL: {url} ({getattr(exc, 'reason', exc)}); {elsewhere}") from None

    if response is not None:
        with response:
            if have and response.status != 206:  # server ignored the Range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=desc or dest.name, file=sys.stderr, disable=None)
            try:
                with open(part, "ab" if have else "wb") as out:
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        bar.update(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                    if total is not None and out.tell() < total:  # the server closed early
                        raise OSError(f"connection closed after {out.tell()} of {total} bytes")
            except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                got = part.stat().st_size if part.exists() else 0
                raise AttnlabError(f"download of {url} was interrupted ({exc}); the {got} bytes received are "
                                   f"kept in {part}: run the same command again to resume it, or {elsewhere}"
                                   ) from None
            finally:
                bar.close()

    if check is not None:
        actual = file_digest(part, check[0])
        if actual != check[1]:
            part.unlink()
            raise AttnlabError(f"checksum mismatch for {url}: expected {check[0]} {check[1]}, got {actual} "
                               f"(the partial download was deleted); try again, or {elsewhere}")
    os.replace(part, dest)


def _inside(root: Path, name: str) -> bool:
    target = (root / name).resolve()
    return target == root or root in target.parents


def extract_archive(path: str | Path, dest: str | Path) -> Path:
    """Unpack a .tar.gz/.tgz/.tar/.zip into ``dest``, refusing path traversal; returns ``dest``.

    The archive is unpacked into a scratch folder inside ``dest`` and moved into place only when
    all of it came out, so a refused or damaged archive leaves ``dest`` as it was.
    """
    path, dest = Path(path), Path(dest)
    name = path.name.lower()
    if not name.endswith((".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        raise AttnlabError(f"cannot extract {path}: unknown archive type (expected .tar.gz, .tgz, .tar or .zip)")
    with removing_new_folders_on_failure(dest):
        scratch = Path(tempfile.mkdtemp(prefix=".extracting-", dir=dest))
        try:
            _unpack(path, scratch)
            for entry in sorted(scratch.iterdir()):
                _move_into(entry, dest / entry.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest


def _unpack(path: Path, out: Path) -> None:
    root = out.resolve()
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    if Path(member).is_absolute() or not _inside(root, member):
                        raise AttnlabError(f"refusing to extract {path}: member {member!r} would land outside "
                                           "the destination folder")
                zf.extractall(out)
        else:
            with tarfile.open(path) as tf:
                members = tf.getmembers()
                for m in members:
                    bad = Path(m.name).is_absolute() or not _inside(root, m.name)
                    if m.issym() or m.islnk():  # a symlink is relative to its folder, a hard link to the root
                        target = os.path.join(os.path.dirname(m.name), m.linkname) if m.issym() else m.linkname
                        bad = bad or Path(m.linkname).is_absolute() or not _inside(root, target)
                    if m.isdev():
                        bad = True
                    if bad:
                        raise AttnlabError(f"refusing to extract {path}: member {m.name!r} would land outside "
                                           "the destination folder")
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(out, members=members, filter="data")
                else:  # Python without extraction filters: the checks above did the work
                    tf.extractall(out, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise AttnlabError(f"{path} is not a valid archive ({exc}); delete it and download again") from None


def _move_into(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging folders into existing ones (files replace files)."""
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for entry in sorted(src.iterdir()):
            _move_into(entry, dst / entry.name)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)
