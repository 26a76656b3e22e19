"""``MyTokenizer``: a word-level vocabulary over :func:`attnlab.data.tokenize.word_tokenize`.

The three special tokens of :mod:`attnlab.vocab` have fixed ids: ``<pad>`` = 0, ``<unk>`` = 1
and ``<start>`` = 2 (every encoded text begins with it). The other ids go to the words of the *training* text, most
frequent first (ties in alphabetical order, so the vocabulary is deterministic), keeping words
seen at least ``min_freq`` times and at most ``max_size`` ids in all. Words are lower-cased by
default (``lowercase=True``): the play's capitalised verse-line openings would otherwise double
the vocabulary. The tokenizer is stored as JSON inside every checkpoint (``to_dict``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from attnlab.data.tokenize import word_tokenize
from attnlab.errors import AttnlabError
from attnlab.vocab import PAD_ID, SPECIALS, START_ID, UNK_ID

__all__ = ["MyTokenizer"]


class MyTokenizer:
    """Word-level tokenizer: ``encode(s)`` -> ``[START_ID, id, ...]``, ``decode(ids)`` -> words."""

    pad_id, unk_id, start_id = PAD_ID, UNK_ID, START_ID

    def __init__(self, vocab: list[str], *, lowercase: bool = True) -> None:
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise AttnlabError(f"a vocabulary must start with the special tokens {list(SPECIALS)}")
        if len(set(vocab)) != len(vocab):
            raise AttnlabError("the vocabulary has duplicate tokens; the checkpoint is corrupted")
        self.vocab = list(vocab)
        self.lowercase = lowercase
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> MyTokenizer:
        """Count the words of ``texts`` (the training split only) and keep the frequent ones."""
        tok = cls(list(SPECIALS), lowercase=lowercase)
        words = (tok.tokenize(t) for t in texts)
        return cls.from_words(words, min_freq=min_freq, max_size=max_size, lowercase=lowercase)

    @classmethod
    def from_words(
        cls,
        word_lists: Iterable[list[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> MyTokenizer:
        """Like :meth:`build` for texts already split by :meth:`tokenize` (tokenize once, reuse)."""
        if min_freq < 1:
            raise AttnlabError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size <= len(SPECIALS):
            raise AttnlabError(f"max_size must exceed the {len(SPECIALS)} special tokens, got {max_size}")
        counts = Counter(w for words in word_lists for w in words)
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls(list(SPECIALS) + words, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text`` (lower-cased when ``lowercase``), as the model sees them."""
        return word_tokenize(text.lower() if self.lowercase else text)

    def encode(self, text: str) -> list[int]:
        """``[START_ID]`` followed by the ids of the words; unknown words become ``UNK_ID``."""
        return self.encode_words(self.tokenize(text))

    def encode_words(self, words: list[str]) -> list[int]:
        """:meth:`encode` for a text already split by :meth:`tokenize`."""
        return [START_ID] + [self.index.get(w, UNK_ID) for w in words]

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """The tokens joined by single spaces (``<start>`` and ``<pad>`` left out unless asked)."""
        skip = {PAD_ID, START_ID} if skip_special else set()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.vocab):
                raise AttnlabError(f"token id {i} is outside the vocabulary of {len(self.vocab)} tokens")
            if i not in skip:
                out.append(self.vocab[i])
        return " ".join(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, stored in checkpoints."""
        return {"type": "word", "lowercase": self.lowercase, "vocab": self.vocab}

    @classmethod
    def from_dict(cls, d: Any) -> MyTokenizer:
        if not isinstance(d, dict) or not isinstance(d.get("vocab"), list):
            raise AttnlabError("the checkpoint has no valid tokenizer vocabulary; it may be corrupted")
        return cls([str(t) for t in d["vocab"]], lowercase=bool(d.get("lowercase", True)))
