"""Any text as one token stream: the first 90 % trains, the last 10 % validates (nanoGPT's way).

:func:`prepare_stream` reads a text file (or the bundled Tiny Shakespeare) in chunks, builds the
tokenizer (characters, or the words of the training part), and encodes the text into one
NumPy array of ids. In character mode a file larger than :data:`MEMMAP_ABOVE` bytes is encoded
chunk by chunk into a cache file and memory-mapped, so a 100 MB corpus never exists as a Python
list (or even wholly in RAM). Word mode splits the whole text into words once (a word never
straddles two chunks), so its text must fit in memory as a list of words.
:class:`WindowBatches` draws random windows from the training stream, as nanoGPT's
``get_batch`` does, and walks the validation stream in order, every token once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from torch import Tensor

from attnlab.data.batching import epoch_generator, shard
from attnlab.data.decoding import decode_blocks
from attnlab.data.dialogue import lm_vocab_fix
from attnlab.data.shakespeare import EMBEDDED
from attnlab.data.tokenizer import CharTokenizer, MyTokenizer
from attnlab.errors import AttnlabError
from attnlab.files import cache_dir as files_cache_dir
from attnlab.files import writing_atomically
from attnlab.vocab import SPECIALS, require_words

__all__ = ["TokenStream", "prepare_stream", "WindowBatches", "MEMMAP_ABOVE", "file_md5"]

MEMMAP_ABOVE = 64 * 2**20  # bytes of text above which the ids go to a memory-mapped cache file
CHUNK = 4 * 2**20  # characters read and encoded at a time (bounds the memory of a big file's encoding)


@dataclass
class TokenStream:
    """A tokenizer and the ids of the training and validation parts of one text."""

    tokenizer: MyTokenizer
    train: np.ndarray  # (N_train,) ids; a np.memmap for big files
    val: np.ndarray  # (N_val,)


def _chunks(path: Path | None) -> Iterator[str]:
    """The text in pieces of at most :data:`CHUNK` characters (UTF-8 decoded incrementally, as
    :func:`attnlab.data.decoding.decode_blocks` does: no BOM; UTF-16 and NUL bytes refused)."""
    if path is None:
        yield resources.files("attnlab.data").joinpath(EMBEDDED).read_text(encoding="utf-8")
        return
    with open(path, "rb") as f:
        yield from decode_blocks(iter(lambda: f.read(CHUNK), b""), f"data file '{path}'")


def file_md5(path: Path | None) -> str:
    """The MD5 of the text's UTF-8 bytes (the bundled text when ``path`` is None)."""
    h = hashlib.md5()
    for chunk in _chunks(path):
        h.update(chunk.encode("utf-8"))
    return h.hexdigest()


def _check(path: Path | None) -> int:
    """The file's size in bytes, after clear errors for a missing, non-file or empty path."""
    if path is None:
        return 0
    if not path.exists():
        raise AttnlabError(f"data file '{path}' does not exist; pass an existing text file with --data")
    if not path.is_file():
        raise AttnlabError(f"data path '{path}' is not a file; pass a plain-text file with --data")
    size = path.stat().st_size
    if size == 0:
        raise AttnlabError(f"data file '{path}' is empty; pass a file with some text in it")
    return size


def _char_tokenizer(path: Path | None, lowercase: bool) -> CharTokenizer:
    """Every character of the whole text (the alphabet; nanoGPT does the same)."""
    chars: set[str] = set()
    for chunk in _chunks(path):
        chars.update(chunk)
    return CharTokenizer.from_text(chars, lowercase=lowercase)


def _dtype(tok: MyTokenizer) -> type[np.unsignedinteger]:
    return np.uint16 if len(tok) <= 2**16 else np.uint32


def _encode_chars(path: Path | None, tok: MyTokenizer, size: int, cache_dir: Path | None) -> np.ndarray:
    """The ids of the whole text: in memory, or for a big file a memory-mapped cache file."""
    dtype = _dtype(tok)
    if size <= MEMMAP_ABOVE:
        return np.concatenate([tok.encode_stream(c) for c in _chunks(path)]).astype(dtype)
    key = hashlib.md5(f"{file_md5(path)}|{tok.to_dict()}".encode()).hexdigest()
    target = Path(cache_dir or files_cache_dir()) / f"stream-{key}.{np.dtype(dtype).name}"
    if not target.exists():
        with writing_atomically(target) as f:
            for chunk in _chunks(path):
                f.write(tok.encode_stream(chunk).astype(dtype).tobytes())
    return np.memmap(target, dtype=dtype, mode="r")


def prepare_stream(path: Path | None, *, tokenizer: Literal["word", "char", "bpe"], val_fraction: float = 0.1,
                   min_freq: int = 1, max_vocab: int | None = None, lowercase: bool = False,
                   tok: MyTokenizer | None = None, cache_dir: Path | None = None,
                   bpe_vocab_size: int = 2000) -> TokenStream:
    """Tokenize the text of ``path`` (None: the bundled Tiny Shakespeare) into one stream and split
    it: the first ``1 - val_fraction`` of the tokens train, the rest validates (BPE: of the
    characters, the BPE of ``bpe_vocab_size`` ids fitted on the training part only). A saved
    ``tok`` (from a checkpoint) is used as it is, never rebuilt."""
    if not 0.0 < val_fraction < 1.0:
        raise AttnlabError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
    size = _check(path)
    if tokenizer == "char" or isinstance(tok, CharTokenizer):
        tok = tok or _char_tokenizer(path, lowercase)
        ids = _encode_chars(path, tok, size, cache_dir)
        cut = int(len(ids) * (1 - val_fraction))
        return TokenStream(tok, ids[:cut], ids[cut:])
    if tokenizer == "bpe" or getattr(tok, "kind", None) == "bpe":  # the whole text in memory, as words
        from attnlab.data.bpe_lm import BPELMTokenizer

        text = "".join(_chunks(path))
        cut = int(len(text) * (1 - val_fraction))
        bpe = tok or cast(MyTokenizer, BPELMTokenizer.fit(text[:cut].splitlines(keepends=True), bpe_vocab_size,
                                                          lowercase=lowercase))
        train, val = (bpe.encode_stream(part).astype(_dtype(bpe)) for part in (text[:cut], text[cut:]))
        return TokenStream(bpe, train, val)
    # words: split once; the vocabulary counts the training words only, so the validation part
    # holds words the model never saw (as <unk>), as it would on new text
    splitter = tok or MyTokenizer(list(SPECIALS), lowercase=lowercase)
    words = splitter.tokenize("".join(_chunks(path)))
    cut = int(len(words) * (1 - val_fraction))
    if tok is None:
        tok = MyTokenizer.from_words([words[:cut]], min_freq=min_freq, max_size=max_vocab, lowercase=lowercase)
        require_words(len(tok) - len(SPECIALS), fix=lm_vocab_fix(min_freq, max_vocab))
    ids = tok.encode_stream(words).astype(_dtype(tok))
    return TokenStream(tok, ids[:cut], ids[cut:])


class WindowBatches:
    """Windows of ``context`` tokens and their next tokens: ``{"input_ids", "labels"}``, (B, T) each.

    Training (``shuffle``): every batch holds ``batch_size`` windows at random offsets, drawn from
    the epoch's own generator, and an "epoch" is as many batches as it takes to see as many tokens
    as the stream holds. Evaluation: consecutive windows in order, every token predicted once
    (the tail shorter than a window is left out).
    """

    def __init__(self, ids: np.ndarray, context: int, batch_size: int, *, shuffle: bool = True) -> None:
        if len(ids) < context + 1:
            raise AttnlabError(f"the text's {'training' if shuffle else 'validation'} part has {len(ids)} tokens, "
                               f"fewer than model.context + 1 = {context + 1}; use a longer text or a smaller "
                               "model.context")
        self.ids, self.context, self.batch_size, self.shuffle = ids, context, batch_size, shuffle
        self.windows = (len(ids) - 1) // context  # non-overlapping windows: the evaluation set

    def __len__(self) -> int:
        return -(-self.windows // self.batch_size)

    def _window(self, start: int) -> np.ndarray:
        return np.asarray(self.ids[start:start + self.context + 1], dtype=np.int64)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, Tensor]]:
        T, B = self.context, self.batch_size
        if self.shuffle:
            g = epoch_generator(epoch, seed)
            starts = torch.randint(0, len(self.ids) - T, (len(self) * B,), generator=g).view(len(self), B)
        else:
            starts = (torch.arange(self.windows) * T).split(B)
        for row in starts:
            if len(row) < world:
                continue
            rows = np.stack([self._window(int(s)) for s in shard(row, rank, world)])  # (b, T + 1)
            window = torch.from_numpy(rows)
            yield {"input_ids": window[:, :-1], "labels": window[:, 1:]}
