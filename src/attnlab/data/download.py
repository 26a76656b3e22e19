"""Downloads that survive real networks: resume, checksum, progress, safe extraction.

``fetch_url`` streams into ``dest.part`` (continuing it with an HTTP Range request if a
previous attempt was cut off), verifies the md5/sha256, then renames it to ``dest``.
``extract_archive`` unpacks .tar.gz/.tgz/.tar/.zip, refusing members that would land outside
the destination (absolute paths, ``..``, links pointing out).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from attnlab.errors import AttnlabError

CHUNK = 1 << 20
TIMEOUT = 30.0  # seconds without data before giving up


def _offline(url: str, reason: object) -> AttnlabError:
    return AttnlabError(f"could not reach URL: {url} ({reason}); download it elsewhere and pass --data-dir PATH")


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(md5: str | None, sha256: str | None) -> tuple[str, str] | None:
    if md5 and sha256:
        raise ValueError("give md5 or sha256, not both")
    if md5:
        return "md5", md5.lower()
    if sha256:
        return "sha256", sha256.lower()
    return None


def fetch_url(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
              desc: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (skipped if ``dest`` exists with the right checksum).

    A partial ``dest.part`` from an interrupted attempt is continued with an HTTP Range request
    (or restarted if the server ignores ranges). A checksum mismatch deletes the download and
    raises ``AttnlabError``; so does an unreachable server (offline: use ``--data-dir``).
    """
    dest = Path(dest)
    check = _expected(md5, sha256)
    if dest.exists():
        if check is None or file_digest(dest, check[0]) == check[1]:
            return dest
        dest.unlink()  # stale or damaged copy: download again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "attnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file
            response = None
        else:
            raise AttnlabError(f"server returned HTTP {exc.code} for URL: {url}; download it elsewhere "
                               "and pass --data-dir PATH") from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        raise _offline(url, getattr(exc, "reason", exc)) from None

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
                raise AttnlabError(f"download of {url} was interrupted ({exc}); run the same command again "
                                   f"to resume it, or download it elsewhere and pass --data-dir PATH") from None
            finally:
                bar.close()

    if check is not None:
        actual = file_digest(part, check[0])
        if actual != check[1]:
            part.unlink()
            raise AttnlabError(f"checksum mismatch for {url}: expected {check[0]} {check[1]}, got {actual} "
                               "(the partial download was deleted); try again, or download it elsewhere "
                               "and pass --data-dir PATH")
    os.replace(part, dest)
    return dest


def _inside(root: Path, name: str) -> bool:
    target = (root / name).resolve()
    return target == root or root in target.parents


def extract_archive(path: str | Path, dest: str | Path) -> Path:
    """Unpack a .tar.gz/.tgz/.tar/.zip into ``dest``, refusing path traversal; returns ``dest``."""
    path, dest = Path(path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    if Path(member).is_absolute() or not _inside(root, member):
                        raise AttnlabError(f"refusing to extract {path}: member {member!r} would land outside {dest}")
                zf.extractall(dest)
        elif name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
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
                        raise AttnlabError(f"refusing to extract {path}: member {m.name!r} would land outside {dest}")
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # Python without extraction filters: the checks above did the work
                    tf.extractall(dest, members=members)
        else:
            raise AttnlabError(f"cannot extract {path}: unknown archive type (expected .tar.gz, .tgz, .tar or .zip)")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise AttnlabError(f"{path} is not a valid archive ({exc}); delete it and download again") from None
    return dest


def remove_partial(dest: str | Path) -> None:
    """Delete ``dest`` and its ``.part`` (a fresh start)."""
    dest = Path(dest)
    for p in (dest, dest.with_name(dest.name + ".part")):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
