"""A pretrained model's own tokenizer (GPT-2's byte-level BPE, BERT's WordPiece), read from its
directory with Hugging Face ``tokenizers``, behind the interface of :class:`attnlab.data.tokenizer.MyTokenizer`.

``PretrainedTokenizer.from_directory(path)`` reads ``tokenizer.json``, or GPT-2's older pair
``vocab.json`` + ``merges.txt`` (built as ``GPT2TokenizerFast`` converts them: byte-level
pre-tokenizer without a prefix space, byte-level decoder). The ids are the files' own, so the
model's embedding rows match; ``encode`` adds no start token (a pretrained GPT-2 is read as one
stream, ``data.mode=stream``). The whole tokenizer is stored in the checkpoint's ``meta.json``
(``to_dict``), so a fine-tuned run needs the source directory no more.

``vocab`` holds each id's *readable* piece for the head view and the step-through: the text the id
decodes to, with a space shown as ``␣`` and a line break as ``↵`` (GPT-2's ``Ġ`` and ``Ċ``
markers turned back into what they stand for); ``tokenize`` returns the raw pieces, which map
back to ids exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnlab.data.bpe import byte_text
from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tokenizers import Tokenizer

__all__ = ["PretrainedTokenizer", "has_tokenizer_files", "readable"]

FILES = ("tokenizer.json", "vocab.json + merges.txt")
END_OF_TEXT = "<|endoftext|>"  # GPT-2's one special token
VISIBLE = {" ": "␣", "\n": "↵", "\t": "→", "\r": "␍"}


def has_tokenizer_files(directory: Path) -> bool:
    """Whether ``directory`` holds a tokenizer this module reads."""
    return (directory / "tokenizer.json").is_file() or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file())


def readable(text: str) -> str:
    """A piece as the explorer shows it: spaces and line breaks made visible."""
    return "".join(VISIBLE.get(c, c) for c in text)


class PretrainedTokenizer:
    """``encode(text) -> ids`` (no start token), ``decode(ids) -> text``, through ``tokenizers``.

    It answers every method and attribute of :class:`attnlab.data.tokenizer.MyTokenizer`, which
    hands it out from ``MyTokenizer.from_dict`` (not a subclass: that module imports this one).
    """

    kind = "pretrained"
    separator = ""  # decoded pieces join with nothing between them (the spaces are in the pieces)
    never_generated: tuple[int, ...] = ()  # every id is an ordinary token (attnlab's pad/start ids are not special)

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.lowercase = False
        self._vocab: list[str] | None = None
        self.raw = [""] * tokenizer.get_vocab_size(with_added_tokens=True)
        for piece, i in tokenizer.get_vocab(with_added_tokens=True).items():
            if 0 <= i < len(self.raw):
                self.raw[i] = piece
        self.index = {piece: i for i, piece in enumerate(self.raw)}
        unk = tokenizer.model.unk_token if hasattr(tokenizer.model, "unk_token") else None
        self.unk_id = self.index.get(unk, -1) if unk else -1  # GPT-2 has none (-1: never an id)
        # pad/start: GPT-2 has neither; the ids are never special to attnlab's generation here
        self.pad_id = self.start_id = -1

    # ----------------------------------------------------------------------- construction
    @classmethod
    def from_directory(cls, directory: str | Path) -> PretrainedTokenizer:
        """The tokenizer in a model directory: ``tokenizer.json``, or ``vocab.json`` + ``merges.txt``."""
        from tokenizers import Tokenizer

        d = Path(directory)
        try:
            if (d / "tokenizer.json").is_file():
                return cls(Tokenizer.from_file(str(d / "tokenizer.json")))
            if (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
                return cls(_byte_level_bpe(d / "vocab.json", d / "merges.txt"))
        except Exception as exc:  # noqa: BLE001 -- tokenizers raises plain Exception on bad files
            raise AttnlabError(f"the tokenizer files in {d} cannot be read ({exc}); copy them again from the "
                               f"model's source") from exc
        raise AttnlabError(f"{d} has no tokenizer files ({' or '.join(FILES)}); copy them from the model's hub "
                           f"page into that directory")

    def to_dict(self) -> dict[str, Any]:
        """The whole tokenizer (``tokenizer.json``'s content), stored in checkpoints."""
        return {"type": self.kind, "tokenizer": json.loads(self.tokenizer.to_str())}

    @classmethod
    def from_saved(cls, d: dict[str, Any]) -> PretrainedTokenizer:
        """The tokenizer :meth:`to_dict` described."""
        from tokenizers import Tokenizer

        if not isinstance(d.get("tokenizer"), dict):
            raise AttnlabError("the checkpoint's pretrained tokenizer is missing from meta.json; it may be corrupted")
        try:
            return cls(Tokenizer.from_str(json.dumps(d["tokenizer"])))
        except Exception as exc:  # noqa: BLE001
            raise AttnlabError(f"the checkpoint's pretrained tokenizer cannot be read ({exc}); it may be corrupted "
                               f"or from a newer tokenizers") from exc

    def save(self, directory: Path) -> list[Path]:
        """Write ``tokenizer.json`` into a model directory (what ``transformers`` reads); the paths written."""
        path = directory / "tokenizer.json"
        self.tokenizer.save(str(path))
        return [path]

    # ----------------------------------------------------------------------- the MyTokenizer interface
    def __len__(self) -> int:
        return len(self.raw)

    @property
    def vocab(self) -> list[str]:
        """Each id's readable piece (computed once, on first use)."""
        if self._vocab is None:
            pieces = self.tokenizer.decode_batch([[i] for i in range(len(self.raw))], skip_special_tokens=False)
            self._vocab = [readable((byte_text(raw) or raw) if "\ufffd" in p else p) if p else raw
                           for p, raw in zip(pieces, self.raw)]
        return self._vocab

    def tokenize(self, text: str) -> list[str]:
        """The raw pieces of ``text`` (``Ġhello`` for GPT-2), one per id."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).tokens)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_words(self, words: list[str]) -> list[int]:
        return [self.index[w] for w in words]

    def encode_stream(self, text: str | list[str]) -> np.ndarray:
        """The ids of ``text`` (or of its raw pieces from :meth:`tokenize`) as one int64 array."""
        ids = self.encode(text) if isinstance(text, str) else self.encode_words(text)
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.raw)]
        if bad:
            raise AttnlabError(f"token id {bad[0]} is outside the vocabulary of {len(self.raw)} tokens")
        return str(self.tokenizer.decode(ids, skip_special_tokens=skip_special))


def _byte_level_bpe(vocab: Path, merges: Path) -> Tokenizer:
    """GPT-2's tokenizer from its two files, as ``transformers`` converts them (``GPT2Converter``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    tok = Tokenizer(BPE.from_file(str(vocab), str(merges), continuing_subword_prefix="", end_of_word_suffix="",
                                  fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if tok.token_to_id(END_OF_TEXT) is not None:  # transformers makes it a special token: never split
        tok.add_special_tokens([AddedToken(END_OF_TEXT, special=True)])
    return tok
