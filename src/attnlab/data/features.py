"""Text features: tokenize many reviews on every core, cache the result, index it by a vocabulary.

``tokenize_texts`` runs :func:`attnlab.data.tokenize.clean_review` + :func:`attnlab.data.tokenize.word_tokenize`
over a list of texts, in one process per core (each returns its own small vocabulary and token
ids, so little crosses the process boundary), and stores the result in a cache file keyed by
the texts' content and the tokenizer settings, so a second run only reads and hashes the
reviews (the README's sentiment table gives the cold and cached times).

The cache is a plain ``.npz`` (no pickles): the distinct tokens as one ``\\n``-joined UTF-8
buffer, the flat token ids and the per-text offsets. It lives in ``--cache-dir``, else
``$ATTNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/attnlab`` (``~/.cache/attnlab``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nltk
import numpy as np
import torch

from attnlab.data.tokenize import clean_review, word_tokenize
from attnlab.files import cache_dir, writing_atomically
from attnlab.vocab import PAD, UNK, UNK_ID

__all__ = [
    "TOKENIZER_SETTINGS", "TokenizedTexts", "default_cache_dir", "tokenize_texts",
    "build_vocab", "encode",
]

# Anything that changes the tokens must change this string (it is part of the cache key).
TOKENIZER_SETTINGS = f"clean_review(lower,<br />)+nltk.word_tokenize(punkt_tab english)/nltk {nltk.__version__}/v1"
_SERIAL_BELOW = 2000  # texts; fewer than this are tokenized in-process (forking costs more)
_CHUNK = 500


@dataclass
class TokenizedTexts:
    """Tokens of N texts: text ``i`` is ``[vocab[j] for j in ids[offsets[i]:offsets[i+1]]]``."""

    vocab: list[str]
    ids: np.ndarray  # (total,) int32 into vocab
    offsets: np.ndarray  # (N + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, i: int) -> list[str]:
        return [self.vocab[j] for j in self.ids[self.offsets[i]:self.offsets[i + 1]]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def default_cache_dir() -> Path:
    """Where tokenized texts are cached by default (:func:`attnlab.files.cache_dir`)."""
    return cache_dir()


def _tokenize_chunk(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Worker: a chunk's own vocabulary, its token ids and per-text lengths."""
    local: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for n, text in enumerate(texts):
        toks = word_tokenize(clean_review(text))
        lengths[n] = len(toks)
        ids.extend(local.setdefault(t, len(local)) for t in toks)
    return list(local), np.asarray(ids, dtype=np.int32), lengths


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def _run(texts: list[str], workers: int | None) -> TokenizedTexts:
    chunks = [texts[i:i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    workers = workers or _workers()
    results: Iterable[tuple[list[str], np.ndarray, np.ndarray]]
    if workers <= 1 or len(texts) < _SERIAL_BELOW:
        results = map(_tokenize_chunk, chunks)
        pool = None
    else:
        methods = multiprocessing.get_all_start_methods()
        # fork shares the already-imported tokenizer; spawn works everywhere else.
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = ctx.Pool(workers)
        results = pool.imap(_tokenize_chunk, chunks)
    vocab: dict[str, int] = {}
    all_ids, all_lengths = [], []
    try:
        for local_vocab, ids, lengths in results:
            remap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in local_vocab),
                                dtype=np.int32, count=len(local_vocab))
            all_ids.append(remap[ids] if len(ids) else ids)
            all_lengths.append(lengths)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int32)
    return TokenizedTexts(list(vocab), ids, offsets)


def _key(texts: list[str]) -> str:
    h = hashlib.blake2b(TOKENIZER_SETTINGS.encode(), digest_size=16)
    for t in texts:
        b = t.encode("utf-8", errors="surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _save(path: Path, tok: TokenizedTexts) -> None:
    vocab = np.frombuffer("\n".join(tok.vocab).encode("utf-8"), dtype=np.uint8)
    with writing_atomically(path) as f:  # a reader never sees half a file
        np.savez(f, vocab=vocab, ids=tok.ids, offsets=tok.offsets)


def _load(path: Path) -> TokenizedTexts | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            text = z["vocab"].tobytes().decode("utf-8")
            return TokenizedTexts(text.split("\n") if text else [], z["ids"], z["offsets"])
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        return None  # missing or damaged: rebuild


def tokenize_texts(
    texts: list[str], *, cache_dir: str | Path | None = None, workers: int | None = None,
    use_cache: bool = True,
) -> TokenizedTexts:
    """Tokens of every text (cleaned, then ``word_tokenize``), cached by content + settings."""
    path = Path(cache_dir or default_cache_dir()) / f"tokens-{_key(texts)}.npz"
    if use_cache:
        cached = _load(path)
        if cached is not None and len(cached) == len(texts):
            return cached
    tok = _run(texts, workers)
    if use_cache:
        try:
            _save(path, tok)
        except OSError:
            pass  # a read-only cache directory only costs speed
    return tok


def build_vocab(tok: TokenizedTexts, rows: np.ndarray | list[int], *, max_size: int,
                min_count: int = 1, specials: tuple[str, ...] = (PAD, UNK)) -> list[str]:
    """The ``max_size`` most frequent tokens of texts ``rows`` (count >= ``min_count``), after ``specials``."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = tok.offsets[rows], tok.offsets[rows + 1]
    sel = np.concatenate([tok.ids[s:e] for s, e in zip(starts, ends)]) if len(rows) else np.zeros(0, np.int32)
    counts = np.bincount(sel, minlength=len(tok.vocab))
    order = np.argsort(-counts, kind="stable")
    keep = [tok.vocab[i] for i in order[:max_size] if counts[i] >= min_count]
    return list(specials) + [w for w in keep if w not in specials]


def encode(tok: TokenizedTexts, rows: np.ndarray | list[int], word_to_id: dict[str, int], *,
           max_len: int, unk: int = UNK_ID) -> dict[str, torch.Tensor]:
    """Padded ids ``(N, max_len)`` (the first ``max_len`` tokens; 0 = padding) and ``lengths``.

    An empty text becomes a single unknown token, so every model gets a defined input.
    """
    rows = np.asarray(rows, dtype=np.int64)
    lookup = np.fromiter((word_to_id.get(w, unk) for w in tok.vocab), dtype=np.int64, count=len(tok.vocab))
    starts = tok.offsets[rows]
    lengths = np.minimum(tok.offsets[rows + 1] - starts, max_len)
    out = np.zeros((len(rows), max_len), dtype=np.int64)
    total = int(lengths.sum())
    row_idx = np.repeat(np.arange(len(rows)), lengths)
    pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row_idx, pos] = lookup[tok.ids[np.repeat(starts, lengths) + pos]]
    empty = lengths == 0
    out[empty, 0] = unk
    lengths = np.maximum(lengths, 1)
    return {"ids": torch.from_numpy(out), "lengths": torch.from_numpy(lengths)}
