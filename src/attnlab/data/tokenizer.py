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
from typing import Any, cast

import numpy as np

from attnlab.errors import AttnlabError
from attnlab.vocab import PAD_ID, SPECIALS, START_ID, UNK_ID

__all__ = ["MyTokenizer", "CharTokenizer", "prompt_ids"]


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
        from attnlab.data.tokenize import word_tokenize  # NLTK, imported only for word-level text

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
        return self.separator.join(out)

    separator = " "  # between decoded tokens
    kind = "word"  # what to_dict stores as "type"
    never_generated: tuple[int, ...] = (PAD_ID, START_ID)  # ids a model of this tokenizer never generates

    def encode_stream(self, text: str | list[str]) -> np.ndarray:
        """The ids of ``text`` (or of its words, already split by :meth:`tokenize`) as one stream
        (no start token), as a NumPy array."""
        words = self.tokenize(text) if isinstance(text, str) else text
        return np.fromiter((self.index.get(w, UNK_ID) for w in words), dtype=np.int64, count=len(words))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description, stored in checkpoints."""
        return {"type": self.kind, "lowercase": self.lowercase, "vocab": self.vocab}

    @classmethod
    def from_dict(cls, d: Any) -> MyTokenizer:
        """The tokenizer :meth:`to_dict` described: a :class:`MyTokenizer` or a :class:`CharTokenizer`."""
        if isinstance(d, dict) and d.get("type") == "bpe":  # fitted on a language model's training text
            from attnlab.data.bpe_lm import BPELMTokenizer

            return cast(MyTokenizer, BPELMTokenizer.from_saved(d))
        if isinstance(d, dict) and d.get("type") == "pretrained":  # a pretrained model's own (GPT-2's BPE...)
            from attnlab.data.pretrained_tokenizer import PretrainedTokenizer

            return cast(MyTokenizer, PretrainedTokenizer.from_saved(d))  # (it answers MyTokenizer's interface)
        if not isinstance(d, dict) or not isinstance(d.get("vocab"), list):
            raise AttnlabError("the checkpoint has no valid tokenizer vocabulary; it may be corrupted")
        kind = d.get("type", "word")
        if kind not in ("word", "char"):
            raise AttnlabError(f"the checkpoint's tokenizer type {kind!r} is unknown; it may be from a newer attnlab")
        make = CharTokenizer if kind == "char" else MyTokenizer
        return make([str(t) for t in d["vocab"]], lowercase=bool(d.get("lowercase", kind == "word")))


class CharTokenizer(MyTokenizer):
    """Character-level tokenizer, as nanoGPT's ``shakespeare_char``: every character is a token.

    The vocabulary is the specials followed by the characters of the text in code-point order;
    case is kept unless ``lowercase``. ``decode`` joins the characters with nothing between them.
    """

    separator = ""
    kind = "char"

    def __init__(self, vocab: list[str], *, lowercase: bool = False) -> None:
        super().__init__(vocab, lowercase=lowercase)
        chars = self.vocab[len(SPECIALS):]
        if any(len(c) != 1 for c in chars):
            raise AttnlabError("a character vocabulary holds single characters; the checkpoint is corrupted")
        order = np.argsort([ord(c) for c in chars])
        self._codes = np.array([ord(c) for c in chars], dtype=np.int64)[order]  # sorted code points
        self._ids = np.arange(len(SPECIALS), len(self.vocab), dtype=np.int64)[order]

    @classmethod
    def from_text(cls, chars: Iterable[str], *, lowercase: bool = False) -> CharTokenizer:
        """The vocabulary of every character in ``chars`` (a text, or a set of characters)."""
        found = sorted({c.lower() if lowercase else c for c in chars} - {""})
        return cls(list(SPECIALS) + found, lowercase=lowercase)

    def tokenize(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def encode_stream(self, text: str | list[str]) -> np.ndarray:
        """All characters at once through a sorted code-point table (no Python loop per character)."""
        text = "".join(text) if isinstance(text, list) else text
        text = text.lower() if self.lowercase else text
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.clip(np.searchsorted(self._codes, codes), 0, max(len(self._codes) - 1, 0))
        known = self._codes[pos] == codes if len(self._codes) else np.zeros(len(codes), bool)
        return np.where(known, self._ids[pos] if len(self._ids) else 0, UNK_ID)


def prompt_ids(tok: MyTokenizer, prompt: str, stream: bool) -> list[int]:
    """The ids a generation starts from. A dialogue model starts every turn with the start token;
    a stream model never saw one, so it continues the prompt's own tokens (a new line if empty)."""
    if not stream:
        return tok.encode(prompt)
    ids = [int(i) for i in tok.encode_stream(prompt or "\n")]
    return ids or [START_ID]
