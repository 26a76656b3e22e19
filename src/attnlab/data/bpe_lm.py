"""A byte-level BPE fitted on a language model's training text (``data.tokenizer=bpe``), behind
the interface of :class:`attnlab.data.tokenizer.MyTokenizer`.

The merges are learnt by :func:`attnlab.data.bpe.fit_bpe` with attnlab's specials first
(``<pad>`` = 0, ``<unk>`` = 1, ``<start>`` = 2, as :mod:`attnlab.vocab` fixes them); the text is
then read without an added prefix space, so the pieces of a text concatenate back to it
exactly. Everything else (the whole tokenizer in ``meta.json``, readable pieces with ``␣`` for a
space) is :class:`attnlab.data.pretrained_tokenizer.PretrainedTokenizer`'s. As the word tokenizer,
``encode`` starts with ``<start>`` (a dialogue turn) and ``encode_stream`` does not (a stream).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from attnlab.data.bpe import fit_bpe
from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
from attnlab.vocab import PAD_ID, SPECIALS, START_ID

__all__ = ["BPELMTokenizer"]


class BPELMTokenizer(PretrainedTokenizer):
    """A BPE of at most ``vocab_size`` ids fitted on the training texts only (:meth:`fit`)."""

    kind = "bpe"
    never_generated: tuple[int, ...] = (PAD_ID, START_ID)

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer)
        self.pad_id, self.start_id = PAD_ID, START_ID

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, *, lowercase: bool = False) -> BPELMTokenizer:
        """Learn the merges from ``texts`` (the training part: never the validation text)."""
        from tokenizers import normalizers, pre_tokenizers

        tok = fit_bpe((t.lower() for t in texts) if lowercase else texts, vocab_size, SPECIALS)
        if lowercase:  # every text read later is lower-cased as the fitted ones were
            tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # a stream adds no space
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        """``[START_ID]`` followed by the pieces' ids (a dialogue turn, as the word tokenizer)."""
        return [START_ID, *super().encode(text)]

    def encode_words(self, words: list[str]) -> list[int]:
        return [START_ID, *super().encode_words(words)]

    def encode_stream(self, text: str | list[str]) -> np.ndarray:
        """The ids of ``text`` (or of its raw pieces), without a start token."""
        ids = super().encode(text) if isinstance(text, str) else [self.index[w] for w in text]
        return np.asarray(ids, dtype=np.int64)
