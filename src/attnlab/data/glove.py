"""GloVe 6B word vectors: ``attnlab data fetch glove`` downloads Stanford's zip and keeps the 50-d file.

``glove.6B.zip`` (Wikipedia 2014 + Gigaword 5: 400,000 uncased words, 862,182,613 bytes) holds
``glove.6B.{50,100,200,300}d.txt``. Only the 50-d member is read, straight out of the zip. Its
lines are sorted by word frequency, so its first N lines are the N most frequent words:
``--vocab-size N`` keeps those, written as ``DEST/glove.6B.50d.topN.txt``; without it the whole
member is written as ``DEST/glove.6B.50d.txt``. Either file is what ``--embeddings PATH`` reads
(:func:`attnlab.data.embeddings.read_embeddings`): one ``word v1 ... v50`` per line.

The download resumes after an interruption and is sha256-checked before anything is extracted.
The zip stays in ``DEST`` so that another ``--vocab-size`` needs no second download; delete it
once you have the vectors you want.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from attnlab.errors import AttnlabError

__all__ = ["URL", "SHA256", "ARCHIVE", "MEMBER", "DIM", "output_name", "fetch", "extract_vectors"]

URL = "https://nlp.stanford.edu/data/glove.6B.zip"
# sha256 of glove.6B.zip (862,182,613 bytes), as pinned by dataset loaders that verify the
# download: torchtext (pytorch/text, torchtext/experimental/vectors.py, CHECKSUMS_GLOVE) and
# Embeddings.jl (JuliaText/Embeddings.jl, src/glove.jl).
SHA256 = "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"
ARCHIVE = "glove.6B.zip"
MEMBER = "glove.6B.50d.txt"
DIM = 50


def output_name(vocab_size: int | None) -> str:
    """``glove.6B.50d.txt`` for the whole file, ``glove.6B.50d.topN.txt`` for its first N words."""
    return MEMBER if vocab_size is None else f"glove.6B.50d.top{vocab_size}.txt"


def fetch(dest: Path, *, vocab_size: int | None = None, url: str | None = None, sha256: str | None = None) -> Path:
    """Download ``glove.6B.zip`` into ``dest`` and write its 50-d vectors (the first ``vocab_size``
    words, or all of them) to ``dest / output_name(vocab_size)``; returns that file.

    ``url`` and ``sha256`` default to Stanford's zip and its published checksum (tests serve a
    small zip of their own). An existing output file is returned as it is.
    """
    from attnlab.data.download import fetch_url

    if vocab_size is not None and vocab_size < 1:
        raise AttnlabError(f"--vocab-size must be >= 1, got {vocab_size} (leave it out to keep all 400,000 words)")
    dest = Path(dest)
    target = dest / output_name(vocab_size)
    if target.is_file():
        return target
    archive = fetch_url(url or URL, dest / ARCHIVE, sha256=sha256 or SHA256, desc="GloVe 6B",
                        elsewhere=f"download it elsewhere and save it as {dest / ARCHIVE}, then run the same "
                                  f"command again (or unzip {MEMBER} from it and pass --embeddings PATH)")
    extract_vectors(archive, target, vocab_size=vocab_size)
    return target


def extract_vectors(archive: Path, target: Path, *, vocab_size: int | None = None) -> int:
    """Copy the first ``vocab_size`` lines (all when ``None``) of the zip's ``glove.6B.50d.txt`` to
    ``target``, checking that each holds a word and 50 values; returns the number of lines."""
    from attnlab.files import writing_atomically

    damaged = "delete it and run the same command again to download it afresh"
    try:
        with zipfile.ZipFile(archive) as zf:
            if MEMBER not in zf.namelist():
                raise AttnlabError(f"{archive} holds no {MEMBER} (it holds {', '.join(zf.namelist()) or 'nothing'}); "
                                   f"{damaged}")
            with zf.open(MEMBER) as src, writing_atomically(target) as out:
                kept = 0
                for lineno, line in enumerate(src, start=1):
                    if vocab_size is not None and kept >= vocab_size:
                        break
                    values = len(line.rstrip(b"\r\n").rstrip(b" ").split(b" ")) - 1
                    if values != DIM:
                        raise AttnlabError(f"{archive}: line {lineno} of {MEMBER} has {values} values, expected {DIM}; "
                                           f"{damaged}")
                    out.write(line)
                    kept += 1
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise AttnlabError(f"{archive} is not a valid zip archive ({exc}); {damaged}") from None
    if kept == 0:
        target.unlink()
        raise AttnlabError(f"{archive}: {MEMBER} is empty; {damaged}")
    return kept
