"""Encoded dialogue turns as a dataset, their padding collate, and length-bucketed batches.

An example is one encoded turn, ``[START_ID, w1, w2, ...]``. A turn longer than the model's
context is split into windows of ``context`` tokens that overlap by one token, so every word
after the start token is a prediction target exactly once (the first token of a window is only
ever an input; it was the last target of the window before).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..engine.batches import shard
from ..models.tokenizer import PAD_ID, SPECIALS, MyTokenizer
from .shakespeare import all_dialogues, split_dialogues

__all__ = ["DialogueDataset", "collate", "LengthBucketBatches", "LMData", "prepare_lm_data"]


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


class LengthBucketBatches:
    """Batches of examples of similar length, so little compute is spent on padding.

    Each epoch: shuffle (seeded by ``seed`` and ``epoch``), cut into pools of ``50 * batch_size``
    examples, sort each pool by length, cut it into batches and shuffle the batches. Follows the
    engine's batches contract (``__len__``, deterministic ``iter_epoch``); ``batch_size`` is the
    global batch, and under DDP each process takes its slice of every batch, as in the engine's
    ``DatasetBatches``.
    """

    def __init__(self, dataset: DialogueDataset, batch_size: int, *, shuffle: bool = True, pool: int = 50) -> None:
        assert batch_size > 0, "batch_size must be positive"
        self.dataset, self.batch_size, self.shuffle, self.pool = dataset, batch_size, shuffle, pool

    def __len__(self) -> int:
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size

    def _batches(self, epoch: int, seed: int) -> list[list[int]]:
        n, bs = len(self.dataset), self.batch_size
        lengths = [len(x) for x in self.dataset.examples]
        order = list(range(n))
        if not self.shuffle:  # evaluation: sorted by length, fewest pad tokens
            order.sort(key=lambda i: lengths[i])
            return [order[i : i + bs] for i in range(0, n, bs)]
        rng = random.Random(seed * 1_000_003 + epoch)
        rng.shuffle(order)
        batches = []
        for p in range(0, n, bs * self.pool):
            pool = sorted(order[p : p + bs * self.pool], key=lambda i: lengths[i])
            batches += [pool[i : i + bs] for i in range(0, len(pool), bs)]
        rng.shuffle(batches)
        return batches

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, Tensor]]:
        for idx in self._batches(epoch, seed):
            if len(idx) < world:
                continue
            idx = shard(torch.tensor(idx), rank, world).tolist()
            yield collate([self.dataset[i] for i in idx])


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
    tokenizer: MyTokenizer | None = None,
) -> LMData:
    """Split ``text`` into turns, split the turns (seeded), build the vocabulary from the
    training turns only (unless a saved ``tokenizer`` is given) and encode both splits.

    A text without blank lines (one block) falls back to one example per non-empty line.
    """
    examples = all_dialogues(text)
    if len(examples) < 2:  # a text with no blank lines: one example per non-empty line instead
        examples = [line.strip() for line in text.splitlines() if line.strip()]
    train_txt, val_txt = split_dialogues(examples, val_fraction=val_fraction, seed=split_seed)
    splitter = tokenizer or MyTokenizer(list(SPECIALS), lowercase=lowercase)
    train_words = [splitter.tokenize(t) for t in train_txt]  # tokenized once, used twice
    tok = tokenizer or MyTokenizer.from_words(train_words, min_freq=min_freq, max_size=max_vocab, lowercase=lowercase)
    train = DialogueDataset([tok.encode_words(w) for w in train_words], context=context)
    val = DialogueDataset([tok.encode(t) for t in val_txt], context=context)
    return LMData(tok, train, val)
