"""BERT's WordPiece tokenizer, read from a model directory with Hugging Face ``tokenizers``.

A BERT directory ships its tokenizer as ``tokenizer.json`` (the ``tokenizers`` format, read as it
is) or as ``vocab.txt`` plus ``tokenizer_config.json`` (``do_lower_case``, ``strip_accents``,
``tokenize_chinese_chars``), which :class:`tokenizers.implementations.BertWordPieceTokenizer`
turns into the same pipeline ``transformers.BertTokenizerFast`` builds: BERT's normaliser and
pre-tokenizer, WordPiece with ``##`` continuations, and ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``
with token types 0 for A's part and 1 for B's. ``tests/data/test_wordpiece.py`` pins the ids equal
to ``BertTokenizerFast`` built from the same files.

A :class:`WordPiece` travels inside a run's ``meta.json`` as its ``tokenizers`` JSON
(:meth:`WordPiece.to_json` / :meth:`WordPiece.from_json`), so a fine-tuned checkpoint reads text
exactly as the model it started from. Long inputs are cut to ``max_len`` tokens, specials included
(a pair loses tokens from its longer text first, as ``transformers``' ``longest_first``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer
    from torch import Tensor

__all__ = ["WordPiece", "TOKENIZER_FILES", "has_wordpiece", "of_meta"]

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # in order of preference


def has_wordpiece(directory: str | Path) -> bool:
    """Whether ``directory`` holds a tokenizer :meth:`WordPiece.from_dir` can read."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def of_meta(meta: dict[str, Any]) -> WordPiece | None:
    """The WordPiece a checkpoint's meta holds (``meta["tokenizer"]``: ``{"kind": "wordpiece", "json"}``), else None."""
    tok = meta.get("tokenizer")
    if isinstance(tok, dict) and tok.get("kind") == "wordpiece":
        return WordPiece.from_json(str(tok["json"]))
    return None


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:  # pragma: no cover - the pretrained extra installs it
        raise AttnlabError("BERT's tokenizer needs the tokenizers package: pip install 'attnlab[pretrained]'") from exc
    return tokenizers


class WordPiece:
    """A BERT WordPiece tokenizer: text (or a pair of texts) -> ids, token types and the pieces."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in vocab]
        if missing:
            raise AttnlabError(f"the tokenizer has no {', '.join(missing)} token, so it is not BERT's WordPiece; "
                               "pass a BERT model directory (vocab.txt or tokenizer.json)")
        self.pad_id = int(vocab["[PAD]"])
        if tokenizer.post_processor is None:  # a tokenizer.json saved without one: BERT's, as transformers adds it
            processors = _tokenizers().processors
            tokenizer.post_processor = processors.TemplateProcessing(
                single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                special_tokens=[("[CLS]", int(vocab["[CLS]"])), ("[SEP]", int(vocab["[SEP]"]))])

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def from_dir(cls, directory: str | Path) -> WordPiece:
        """The tokenizer of a model directory: ``tokenizer.json``, else ``vocab.txt`` (+ ``tokenizer_config.json``)."""
        tokenizers = _tokenizers()
        d = Path(directory)
        if (d / "tokenizer.json").is_file():
            try:
                return cls(tokenizers.Tokenizer.from_file(str(d / "tokenizer.json")))
            except Exception as exc:  # noqa: BLE001 -- tokenizers raises a bare Exception for a bad file
                raise AttnlabError(f"{d / 'tokenizer.json'} is not a tokenizers file ({exc}); download it "
                                   "again, or delete it to use vocab.txt") from exc
        if not (d / "vocab.txt").is_file():
            raise AttnlabError(f"{d} holds no tokenizer (tokenizer.json or vocab.txt); copy the model's tokenizer "
                               "files into it")
        settings = _tokenizer_config(d / "tokenizer_config.json")
        lower = bool(settings.get("do_lower_case", True))
        strip = settings.get("strip_accents")
        wp = tokenizers.implementations.BertWordPieceTokenizer(
            str(d / "vocab.txt"), lowercase=lower, strip_accents=strip if isinstance(strip, bool) else None,
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)), clean_text=True)
        return cls.from_json(wp.to_str())

    @classmethod
    def from_json(cls, text: str) -> WordPiece:
        """A tokenizer from :meth:`to_json`'s string (a checkpoint's ``meta["tokenizer"]["json"]``)."""
        return cls(_tokenizers().Tokenizer.from_str(text))

    def to_json(self) -> str:
        return str(self.tokenizer.to_str())

    def save(self, directory: Path) -> list[Path]:
        """Write ``tokenizer.json`` and ``vocab.txt`` (ids in order) into ``directory``; returns the paths."""
        from attnlab.files import write_atomic

        vocab = self.tokenizer.get_vocab()
        words = sorted(vocab, key=vocab.__getitem__)
        written = [directory / "tokenizer.json", directory / "vocab.txt"]
        write_atomic(written[0], self.to_json())
        write_atomic(written[1], "".join(f"{w}\n" for w in words))
        return written

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str, pair: str | None = None, *, max_len: int | None = None) -> Encoding:
        """One text (or a pair) as a ``tokenizers.Encoding`` (``ids``, ``type_ids``, ``tokens``),
        cut to ``max_len`` tokens when given."""
        return self.encode_batch([text], [pair] if pair is not None else None, max_len=max_len)[0]

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None, *,
                     max_len: int | None = None) -> list[Encoding]:
        inputs: list[Any] = list(texts) if pairs is None else [[a, b] for a, b in zip(texts, pairs, strict=True)]
        if max_len is not None:
            self.tokenizer.enable_truncation(max_length=max_len, strategy="longest_first")
        try:
            return list(self.tokenizer.encode_batch(inputs))
        finally:
            self.tokenizer.no_truncation()

    def tensors(self, texts: list[str], max_len: int, pairs: list[str] | None = None) -> dict[str, Tensor]:
        """``{"ids" (N, max_len), "lengths" (N,), "token_type_ids" (N, max_len)}``, padded with ``[PAD]``."""
        import torch

        encodings = self.encode_batch(texts, pairs, max_len=max_len)
        ids = torch.full((len(texts), max_len), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(texts), max_len), dtype=torch.long)
        lengths = torch.tensor([len(e.ids) for e in encodings], dtype=torch.long)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            types[row, :len(e.type_ids)] = torch.tensor(e.type_ids, dtype=torch.long)
        return {"ids": ids, "lengths": lengths, "token_type_ids": types}


def _tokenizer_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AttnlabError(f"{path} is not JSON ({exc}); download it again, or delete it (vocab.txt alone means "
                           "lower case)") from exc
    return found if isinstance(found, dict) else {}
