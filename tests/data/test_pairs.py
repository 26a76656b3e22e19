"""Sentence pairs: the TSV reader (first two columns, clear errors) and the split by source sentence."""

from __future__ import annotations

import pytest

from attnlab.data.pairs import find_pairs_file, read_pairs, split_pairs
from attnlab.errors import AttnlabError


def test_reads_the_first_two_columns_and_skips_blank_lines(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)\n\n"
                    "Hi.\tSalut !\r\nWho?\t Qui ? \n", encoding="utf-8")
    assert read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut !"), ("Who?", "Qui ?")]


@pytest.mark.parametrize("text, match", [
    ("Go.\tVa !\njust one column\n", r"pairs.tsv line 2 has one column, not source<TAB>target"),
    ("", r"pairs.tsv holds no sentence pairs"),
    ("\n  \n", r"pairs.tsv holds no sentence pairs"),
    ("Go.\t\n", r"pairs.tsv line 1 has an empty target"),
])
def test_bad_files_name_the_file_and_line(tmp_path, text, match):
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AttnlabError, match=match):
        read_pairs(path)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(AttnlabError, match=r"pair file .*nowhere.tsv does not exist"):
        read_pairs(tmp_path / "nowhere.tsv")


def pairs_with_alternates(n_sources: int = 200) -> list[tuple[str, str]]:
    """Sentence i has 1 + (i % 3) translations, the alternates on lines far apart (as in fra.txt)."""
    first = [(f"sentence {i}.", f"phrase {i}.") for i in range(n_sources)]
    more = [(f"sentence {i}.", f"phrase {i} ({k}).") for k in (1, 2) for i in range(n_sources) if i % 3 >= k]
    return first + more


def test_split_never_puts_one_source_in_two_splits():
    pairs = pairs_with_alternates()
    splits = split_pairs(pairs, val_fraction=0.1, test_fraction=0.2, seed=0)
    sources = {name: {s for s, _ in getattr(splits, name)} for name in ("train", "val", "test")}
    assert not sources["train"] & sources["val"] and not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]
    assert (len(sources["test"]), len(sources["val"]), len(sources["train"])) == (40, 20, 140)  # of 200 sources
    assert sorted(splits.train + splits.val + splits.test) == sorted(pairs)  # every pair once
    for name in ("train", "val", "test"):  # all translations of a source come along, in file order
        part = getattr(splits, name)
        assert part == [p for p in pairs if p[0] in sources[name]]


def test_the_split_follows_the_seed():
    pairs = pairs_with_alternates()
    a = split_pairs(pairs, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert a == split_pairs(list(pairs), val_fraction=0.1, test_fraction=0.2, seed=0)
    b = split_pairs(pairs, val_fraction=0.1, test_fraction=0.2, seed=1)
    assert {s for s, _ in a.test} != {s for s, _ in b.test}


def test_find_pairs_file(tmp_path):
    (tmp_path / "fra-eng").mkdir()
    (tmp_path / "fra-eng" / "fra.txt").write_text("Go.\tVa !\n")
    assert find_pairs_file(None, tmp_path) == tmp_path / "fra-eng" / "fra.txt"
    assert find_pairs_file(tmp_path / "x.tsv", None) == tmp_path / "x.tsv"
    with pytest.raises(AttnlabError, match=r"no fra-eng/fra.txt under --data-dir .*; run `attnlab data fetch tatoeba"):
        find_pairs_file(None, tmp_path / "fra-eng" / "nothing")
    with pytest.raises(AttnlabError, match=r"no sentence pairs given; pass --data-dir DIR"):
        find_pairs_file(None, None)
