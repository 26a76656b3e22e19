"""The sentiment pipeline: reviews -> tokens (cached, every core) -> ids under one vocabulary.

:func:`prepare_reviews` loads the train / validation / test reviews (:mod:`attnlab.data.imdb`),
tokenizes them (:mod:`attnlab.data.features`), takes the vocabulary from the word vectors when
there are any (:mod:`attnlab.data.embeddings`) or else from the most frequent training words,
and pads each review's first ``max_len`` ids into one tensor per split. :func:`encode_texts`
does the same for new texts under a trained model's vocabulary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from attnlab.data.embeddings import read_embeddings
from attnlab.data.features import build_vocab, encode, tokenize_texts
from attnlab.data.imdb import Review, digest, load_splits
from attnlab.errors import AttnlabError
from attnlab.memory import require
from attnlab.vocab import PAD, UNK, require_words

__all__ = ["EncodedReviews", "prepare_reviews", "encode_reviews", "encode_texts"]


@dataclass
class EncodedReviews:
    tensors: dict[str, dict[str, Tensor]]  # split -> {"ids" (N, max_len), "lengths" (N,), "label" (N,)}
    vocab: list[str]
    vectors: Tensor | None  # (len(vocab), e) pretrained word vectors, or None
    seconds: float  # time spent reading, tokenizing and indexing
    checksum: str  # of every review (ids, labels, texts) of every split: what --resume compares


def prepare_reviews(*, data_dir: Path | None, train: Path | None, dev: Path | None, test: Path | None,
                    embeddings: Path | None, max_len: int, vocab_size: int, min_count: int,
                    val_fraction: float, split_seed: int, cache_dir: Path | None = None,
                    workers: int | None = None, vocab: list[str] | None = None) -> EncodedReviews:
    """Load the reviews, tokenize them (cached, all cores), index and pad them; time it.

    A saved ``vocab`` (resuming a run) is used as it is; word vectors must then cover exactly it.
    """
    t0 = time.perf_counter()
    splits = load_splits(data_dir=data_dir, train=train, dev=dev, test=test, val_fraction=val_fraction,
                         seed=split_seed)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    n = sum(len(p) for p in parts.values())
    require(3 * 8 * n * max_len, what=f"padding {n:,} reviews to model.max_len={max_len:,} tokens",
            fix="lower model.max_len (reviews are truncated to it)")
    tok = tokenize_texts([r.text for name in parts for r in parts[name]], cache_dir=cache_dir, workers=workers)
    rows, start = {}, 0
    for name, reviews in parts.items():
        rows[name] = np.arange(start, start + len(reviews))
        start += len(reviews)
    vectors = None
    if embeddings is not None:
        vectors, words = read_embeddings(embeddings, vocab_size=vocab_size)
        if vocab is not None and words != vocab:
            raise AttnlabError(f"the word vectors {embeddings} do not hold the vocabulary this run was trained "
                               "with; resume with the original --embeddings file")
        vocab = words
    elif vocab is None:
        vocab = build_vocab(tok, rows["train"], max_size=vocab_size, min_count=min_count, specials=(PAD, UNK))
        require_words(len(vocab) - 2, fix=f"raise model.vocab_size (now {vocab_size}) or lower model.min_count "
                                          f"(now {min_count})")
    word_to_id = {w: i for i, w in enumerate(vocab)}
    tensors = {}
    for name, reviews in parts.items():
        enc = encode(tok, rows[name], word_to_id, max_len=max_len)
        enc["label"] = torch.tensor([r.label for r in reviews], dtype=torch.long)
        tensors[name] = enc
    checksum = digest([r for name in parts for r in parts[name]])
    return EncodedReviews(tensors, vocab, vectors, time.perf_counter() - t0, checksum)


def encode_reviews(reviews: list[Review], vocab: list[str], max_len: int, *, cache_dir: Path | None = None,
                   workers: int | None = None) -> dict[str, Tensor]:
    """``{"ids", "lengths", "label"}`` of labelled reviews under a trained model's vocabulary."""
    tok = tokenize_texts([r.text for r in reviews], cache_dir=cache_dir, workers=workers)
    enc = encode(tok, np.arange(len(reviews)), {w: i for i, w in enumerate(vocab)}, max_len=max_len)
    enc["label"] = torch.tensor([r.label for r in reviews], dtype=torch.long)
    return enc


def encode_texts(texts: list[str], vocab: list[str], max_len: int) -> tuple[dict[str, Tensor], list[list[str]]]:
    """Tokenize and index raw texts for a trained model -> (batch, the tokens the model sees)."""
    tok = tokenize_texts(texts, use_cache=False, workers=1)
    enc = encode(tok, np.arange(len(texts)), {w: i for i, w in enumerate(vocab)}, max_len=max_len)
    seen = [tok.tokens(i)[:max_len] or [UNK] for i in range(len(texts))]
    return enc, seen
