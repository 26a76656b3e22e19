"""Tatoeba English-French sentence pairs, as released by manythings.org (``fra-eng.zip``).

``attnlab data fetch tatoeba --dest DIR`` downloads the public zip (resumable) and unpacks it to
``DIR/fra-eng/fra.txt`` (``English<TAB>French<TAB>attribution`` per line), the layout the
``translate`` task reads with ``--data-dir DIR``. Licence: CC BY 2.0 (France); attribution
"www.manythings.org/anki and tatoeba.org" (:data:`ATTRIBUTION`).

manythings.org republishes the zip as the Tatoeba corpus grows, so no single checksum holds for
long: by default the download is checked with the zip's own CRC-32 of every member and the pairs
must parse, and its SHA-256 is printed for the record; ``sha256=`` (a known copy) checks it exactly.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from attnlab.errors import AttnlabError

__all__ = ["URL", "ARCHIVE", "ATTRIBUTION", "fetch", "extract_pairs"]

URL = "https://www.manythings.org/anki/fra-eng.zip"
ARCHIVE = "fra-eng.zip"
MEMBER = "fra.txt"
ATTRIBUTION = ("Tatoeba English-French pairs from www.manythings.org/anki and tatoeba.org, "
               "licence CC BY 2.0 (France): https://creativecommons.org/licenses/by/2.0/fr/")


def fetch(dest: Path, *, url: str | None = None, sha256: str | None = None) -> Path:
    """Download ``fra-eng.zip`` into ``dest`` and unpack its ``fra.txt`` to
    ``dest/fra-eng/fra.txt``; returns that file (an existing one is returned as it is)."""
    from attnlab.data.download import fetch_url
    from attnlab.files import file_digest

    dest = Path(dest)
    target = dest / "fra-eng" / MEMBER
    print(ATTRIBUTION, file=sys.stderr)
    if target.is_file():
        return target
    archive = fetch_url(url or URL, dest / ARCHIVE, sha256=sha256, desc="Tatoeba fra-eng",
                        elsewhere=f"download {URL} elsewhere (a browser works), save it as {dest / ARCHIVE} "
                                  "and run the same command again, or unzip it and pass --data-dir")
    count = extract_pairs(archive, target)
    print(f"{archive}: sha256 {file_digest(archive, 'sha256')}; {count:,} pairs in {target}", file=sys.stderr)
    return target


def extract_pairs(archive: Path, target: Path) -> int:
    """Check the zip (CRC-32 of every member) and write its ``fra.txt`` to ``target`` atomically;
    returns the number of pairs. A damaged zip, or one without pairs, is an error that deletes it."""
    from attnlab.data.pairs import read_pairs
    from attnlab.files import writing_atomically

    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
            if MEMBER not in zf.namelist():
                raise zipfile.BadZipFile(f"no {MEMBER} in it (members: {', '.join(zf.namelist()[:5])})")
            data = zf.read(MEMBER)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        Path(archive).unlink(missing_ok=True)
        raise AttnlabError(f"{archive} is not a valid fra-eng.zip ({exc}); it was deleted: run the same command "
                           "again to download it anew") from None
    with writing_atomically(target) as f:
        f.write(data)
        f.flush()
        count = len(read_pairs(f.name))  # a zip without pairs fails here, leaving no target behind
    return count
