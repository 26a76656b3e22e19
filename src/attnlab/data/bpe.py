"""A byte-level BPE subword tokenizer, fitted with Hugging Face ``tokenizers``.

``fit_bpe(texts, vocab_size, specials)`` learns the merges from the given texts (the training
split only) and returns a ``tokenizers.Tokenizer``; :class:`BPETokenizer` wraps it with what the
tasks need: ids in and out, a JSON string to keep in a checkpoint's meta (and back), and each
piece as readable text. Byte-level means every string can be encoded (no unknown token): text
is NFC-normalised, split into words that carry their leading space, and each word's UTF-8
bytes are merged into pieces. ``tokenizers`` is imported when a tokenizer is fitted or read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attnlab.errors import AttnlabError

__all__ = ["fit_bpe", "BPETokenizer", "SPACE"]

SPACE = "\u2581"  # how a piece's leading space is shown ("▁", as SentencePiece writes it)


def _require_tokenizers() -> Any:
    try:
        import tokenizers
    except ModuleNotFoundError:
        raise AttnlabError("BPE needs the Hugging Face tokenizers package; pip install 'attnlab[translate]'") from None
    return tokenizers


def fit_bpe(texts: Iterable[str], vocab_size: int, specials: Sequence[str] = ()) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` with at most ``vocab_size`` entries, learnt from
    ``texts``; ``specials`` get the first ids, in order (e.g. ``<pad>`` = 0)."""
    tk = _require_tokenizers()
    alphabet = tk.pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials):
        raise AttnlabError(f"a byte-level BPE vocabulary needs at least {len(alphabet) + len(specials)} entries "
                           f"(256 bytes and {len(specials)} special tokens), got {vocab_size}; raise the vocab size")
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.normalizer = tk.normalizers.NFC()
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), initial_alphabet=alphabet,
                                     show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


class BPETokenizer:
    """A fitted ``tokenizers.Tokenizer`` with the operations attnlab uses."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int, specials: Sequence[str] = ()) -> BPETokenizer:
        return cls(fit_bpe(texts, vocab_size, specials))

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        """The tokenizer :meth:`to_json` wrote (as kept in a checkpoint's meta)."""
        return cls(_require_tokenizers().Tokenizer.from_str(text))

    def to_json(self) -> str:
        return str(self.tokenizer.to_str())

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def token_id(self, token: str) -> int:
        """The id of a token (a special token such as ``<pad>``); an error if it is not in the vocabulary."""
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return int(i)

    def encode(self, text: str) -> list[int]:
        """The piece ids of ``text`` (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens dropped, the prefix space removed)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)).strip()

    def piece_text(self, token_id: int) -> str:
        """One piece as a person reads it: its bytes as text, a leading space shown as ``▁``, and
        a byte that is not a whole character (part of ``é``) or a control byte written ``\\xc3``."""
        token = self.tokenizer.id_to_token(int(token_id))
        if token is None:
            return f"<{token_id}>"
        text = byte_text(token)
        if text is None:  # not made of byte symbols
            text = str(self.tokenizer.decode([int(token_id)], skip_special_tokens=True))
            return text.replace(" ", SPACE) if text else str(token)  # nothing left: a special token
        text = "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)
        return text.replace(" ", SPACE)

    def pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` as readable text (``piece_text`` of each id)."""
        return [self.piece_text(i) for i in self.encode(text)]


def _byte_symbols() -> dict[str, int]:
    """Byte-level BPE's symbol for each byte -> the byte (GPT-2's table: printable Latin-1 bytes stand
    for themselves, the others for the characters from U+0100 on, in byte order)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return {**{chr(b): b for b in kept}, **{chr(256 + n): b for n, b in enumerate(moved)}}


BYTE_SYMBOLS = _byte_symbols()


def byte_text(raw: str) -> str | None:
    """The text a byte-level piece (``Ġhello``) stands for, with bytes that are not a whole
    character written ``\\xe2`` (not the replacement character); None for a piece that is not
    made of byte symbols (or is empty)."""
    if not raw or any(c not in BYTE_SYMBOLS for c in raw):
        return None
    return bytes(BYTE_SYMBOLS[c] for c in raw).decode("utf-8", errors="backslashreplace")
