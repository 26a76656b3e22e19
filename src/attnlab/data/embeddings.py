"""Pretrained word vectors in the GloVe / word2vec text format.

One word per line followed by its vector, separated by spaces: ``word v1 v2 ... vD``. An
optional word2vec header line ``COUNT DIM`` is skipped; ``.gz`` files are read directly. The
dimension is inferred from the first vector line. Index 0 is padding (a zero vector) and index
1 the unknown word (:mod:`attnlab.vocab`) (also zero: unknown words carry no information, and the averaging models skip
them), so the vocabulary of a file with N words has N + 2 entries.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import torch

from attnlab.errors import AttnlabError
from attnlab.vocab import PAD, UNK

__all__ = ["read_embeddings"]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def read_embeddings(path: str | Path, vocab_size: int = 50000) -> tuple[torch.Tensor, list[str]]:
    """Read the first ``vocab_size`` vectors of ``path`` -> ``(vectors, vocab)``.

    ``vectors`` is a float32 ``(len(vocab), dim)`` tensor; ``vocab[0] == "<pad>"`` and
    ``vocab[1] == "<unk>"`` (both zero vectors), then the file's words in file order (files list
    the most frequent words first). A repeated word keeps its first vector. A malformed line
    (wrong number of values, a value that is not a number) raises ``AttnlabError`` naming the
    file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(
            f"word-vector file '{path}' does not exist; pass --embeddings PATH to a GloVe-format "
            "text file (word v1 ... vD per line, optionally .gz)"
        )
    if vocab_size < 1:
        raise AttnlabError(f"vocab_size must be >= 1, got {vocab_size}")
    words: list[str] = [PAD, UNK]
    seen: set[str] = set(words)
    rows: list[np.ndarray] = []
    dim: int | None = None
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\n\r").rstrip(" ").split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec header: "COUNT DIM"
                if parts == [""]:
                    continue  # blank line (e.g. at the end)
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise AttnlabError(
                            f"{path}: line {lineno} has no vector; expected 'word v1 v2 ... vD'"
                        )
                if len(parts) != dim + 1:
                    raise AttnlabError(
                        f"{path}: line {lineno} has {len(parts) - 1} values, expected {dim} "
                        f"(the dimension of the first vector); the file is malformed or truncated"
                    )
                try:
                    vec = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise AttnlabError(
                        f"{path}: line {lineno} holds a value that is not a number "
                        f"(word {parts[0]!r}); expected 'word v1 v2 ... vD'"
                    ) from None
                if not np.isfinite(vec).all():
                    raise AttnlabError(f"{path}: line {lineno} holds a non-finite value (nan/inf)")
                word = parts[0]
                if word in seen:
                    continue
                seen.add(word)
                words.append(word)
                rows.append(vec)
                if len(rows) >= vocab_size:
                    break
    except UnicodeDecodeError as e:
        raise AttnlabError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                           "expected a GloVe-format text file") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise AttnlabError(f"cannot read word vectors from {path}: {e}") from None
    if not rows:
        raise AttnlabError(f"{path} holds no word vectors; expected 'word v1 v2 ... vD' lines")
    table = np.zeros((len(words), len(rows[0])), dtype=np.float32)
    table[2:] = np.stack(rows)
    return torch.from_numpy(table), words
