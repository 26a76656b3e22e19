"""Sentence pairs for translation: a TSV of ``source<TAB>target`` lines, split by source sentence.

``read_pairs`` reads the first two columns of each line (later columns, such as the
attribution column of manythings.org's ``fra.txt``, are ignored). ``split_pairs`` splits by
SOURCE sentence with a seed: the alternate translations of one English sentence always land in
the same split, so no test sentence was seen in training with another translation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from attnlab.errors import AttnlabError

__all__ = ["Pair", "PairSplits", "read_pairs", "split_pairs", "find_pairs_file", "DEFAULT_NAME"]

Pair = tuple[str, str]
DEFAULT_NAME = Path("fra-eng") / "fra.txt"  # the layout of manythings.org's fra-eng.zip


def read_pairs(path: str | Path) -> list[Pair]:
    """The ``(source, target)`` pairs of a UTF-8 TSV file; blank lines are skipped.

    A line with fewer than two columns, an empty source or target, or a file without any pair
    is an :class:`AttnlabError` naming the file (and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"pair file {path} does not exist; pass a TSV of source<TAB>target lines "
                           "(--data FILE) or the folder holding fra-eng/fra.txt (--data-dir DIR)")
    pairs: list[Pair] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise AttnlabError(f"{path} line {number} has one column, not source<TAB>target; "
                                   "pass a TSV with the source sentence and its translation on each line")
            src, tgt = cols[0].strip(), cols[1].strip()
            if not src or not tgt:
                raise AttnlabError(f"{path} line {number} has an empty {'source' if not src else 'target'}; "
                                   "remove the line or fill it in")
            pairs.append((src, tgt))
    if not pairs:
        raise AttnlabError(f"{path} holds no sentence pairs; pass a TSV of source<TAB>target lines")
    return pairs


@dataclass
class PairSplits:
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]


def split_pairs(pairs: list[Pair], *, val_fraction: float, test_fraction: float, seed: int) -> PairSplits:
    """Split by source sentence: the distinct sources are shuffled with ``seed`` and the first
    ``test_fraction`` of them (with all their pairs) go to test, the next ``val_fraction`` to
    validation, the rest to training. Pairs keep their file order within a split."""
    sources = sorted({s for s, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_test = round(len(sources) * test_fraction)
    n_val = round(len(sources) * val_fraction)
    where = {s: "test" for s in sources[:n_test]}
    where.update({s: "val" for s in sources[n_test:n_test + n_val]})
    out: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for pair in pairs:
        out[where.get(pair[0], "train")].append(pair)
    return PairSplits(**out)


def find_pairs_file(data: str | Path | None, data_dir: str | Path | None) -> Path:
    """The pair file a task reads: ``data`` itself, or ``data_dir/fra-eng/fra.txt`` (also
    ``data_dir/fra.txt``, or ``data_dir`` being the file)."""
    if data is not None:
        return Path(data)
    if data_dir is None:
        raise AttnlabError("no sentence pairs given; pass --data-dir DIR (holding fra-eng/fra.txt: "
                           "`attnlab data fetch tatoeba --dest DIR` writes it) or --data FILE (a TSV of pairs)")
    root = Path(data_dir)
    for candidate in (root / DEFAULT_NAME, root / "fra.txt", root):
        if candidate.is_file():
            return candidate
    raise AttnlabError(f"no {DEFAULT_NAME} under --data-dir {root}; run `attnlab data fetch tatoeba --dest {root}` "
                       "or pass --data FILE")
