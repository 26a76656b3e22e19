"""Encoded dialogue turns as a dataset, their padding collate, and length-bucketed batches.

:func:`prepare_lm_data` is the whole pipeline of the language-model tasks: split the text into
turns, split the turns into training and validation (seeded), build the vocabulary from the
training turns, encode both.

An example is one encoded turn, ``[START_ID, w1, w2, ...]``. A turn longer than the model's
context is split into windows of ``context`` tokens that overlap by one token, so every word
after the start token is a prediction target exactly once (the first token of a window is only
ever an input; it was the last target of the window before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import Tensor

from attnlab.data.batching import DatasetBatches
from attnlab.data.shakespeare import all_dialogues, split_dialogues
from attnlab.data.tokenizer import CharTokenizer, MyTokenizer
from attnlab.vocab import PAD_ID, SPECIALS, require_words

__all__ = ["DialogueDataset", "collate", "lm_batches", "LMData", "prepare_lm_data", "windows"]


def windows(ids: list[int], context: int) -> list[list[int]]:
    """Split ``ids`` into windows of at most ``context`` tokens overlapping by one token."""
    assert context >= 2, "context must be at least 2 tokens (one input, one target)"
    if len(ids) <= context:
        return [ids]
    step = context - 1
    return [ids[s : s + context] for s in range(0, len(ids) - 1, step)]


class DialogueDataset(torch.utils.data.Dataset):
    """Map-style dataset of token-id lists, long turns split into ``context``-sized windows."""

    def __init__(self, encoded: list[list[int]], *, context: int) -> None:
        self.context = context
        self.examples = [w for ids in encoded if len(ids) >= 2 for w in windows(ids, context)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[int]:
        return self.examples[i]

    def num_targets(self) -> int:
        """Number of predicted tokens (the denominator of the perplexity)."""
        return sum(len(x) - 1 for x in self.examples)


def collate(examples: list[list[int]]) -> dict[str, Tensor]:
    """Right-pad to the longest example: ``input_ids`` (B, T) long, ``input_mask`` (B, T) bool (True = real)."""
    T = max(len(x) for x in examples)
    ids = torch.full((len(examples), T), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.bool)
    for b, x in enumerate(examples):
        ids[b, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[b, : len(x)] = True
    return {"input_ids": ids, "input_mask": mask}


def lm_batches(dataset: DialogueDataset, batch_size: int, *, shuffle: bool = True) -> DatasetBatches:
    """Length-bucketed, right-padded batches of ``dataset`` (:func:`attnlab.data.batching.batch_indices`)."""
    return DatasetBatches(dataset, batch_size, collate_fn=collate, shuffle=shuffle,
                          lengths=[len(x) for x in dataset.examples])


@dataclass
class LMData:
    """Everything a language-model task trains on: the tokenizer and the two datasets."""

    tokenizer: MyTokenizer
    train: DialogueDataset
    val: DialogueDataset


def prepare_lm_data(
    text: str,
    *,
    context: int,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    min_freq: int = 1,
    max_vocab: int | None = None,
    lowercase: bool = True,
    kind: Literal["word", "char", "bpe"] = "word",
    tokenizer: MyTokenizer | None = None,
    bpe_vocab_size: int = 2000,
) -> LMData:
    """Split ``text`` into turns, split the turns (seeded), build the vocabulary (words,
    characters, or a byte-level BPE of ``bpe_vocab_size`` ids: ``kind``) from the training turns
    only (unless a saved ``tokenizer`` is given) and encode both splits.

    A text without blank lines (one block) falls back to one example per non-empty line.
    """
    examples = all_dialogues(text)
    if len(examples) < 2:  # a text with no blank lines: one example per non-empty line instead
        examples = [line.strip() for line in text.splitlines() if line.strip()]
    train_txt, val_txt = split_dialogues(examples, val_fraction=val_fraction, seed=split_seed)
    if kind == "bpe" and tokenizer is None:  # fitted on the training turns, then used as a saved one
        from attnlab.data.bpe_lm import BPELMTokenizer

        tokenizer = cast(MyTokenizer, BPELMTokenizer.fit(train_txt, bpe_vocab_size, lowercase=lowercase))
    make = CharTokenizer if kind == "char" else MyTokenizer
    splitter = tokenizer or make(list(SPECIALS), lowercase=lowercase)
    train_words = [splitter.tokenize(t) for t in train_txt]  # tokenized once, used twice
    tok = tokenizer or make.from_words(train_words, min_freq=min_freq, max_size=max_vocab, lowercase=lowercase)
    if tokenizer is None:
        require_words(len(tok) - len(SPECIALS), fix=lm_vocab_fix(min_freq, max_vocab))
    train = DialogueDataset([tok.encode_words(w) for w in train_words], context=context)
    val = DialogueDataset([tok.encode(t) for t in val_txt], context=context)
    return LMData(tok, train, val)


def lm_vocab_fix(min_freq: int, max_vocab: int | None) -> str:
    """What to change when the training text leaves too few words in the vocabulary."""
    cap = f"raise data.max_vocab (now {max_vocab})" if max_vocab is not None else "pass a longer --data text"
    return f"lower data.min_freq (now {min_freq}) or {cap}"
