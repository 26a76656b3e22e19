"""IMDB reading (aclImdb folder, archive, TSV), word vectors and the cached feature builder."""

from __future__ import annotations

import gzip
import tarfile

import numpy as np
import pytest
import torch

from attnlab.data import features, imdb
from attnlab.data.embeddings import read_embeddings
from attnlab.errors import AttnlabError


def make_acl_tree(root, n=6):
    """A fake aclImdb/ with n reviews per split and label (names <id>_<rating>.txt)."""
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i in range(n):
                word = "great" if label == "pos" else "awful"
                (d / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(
                    f"Review {i} of {split}: a {word} film.<br /><br />Mr. Smith's {word} acting...",
                    encoding="utf-8")
    (root / "aclImdb" / "README").write_text("fake")
    return root / "aclImdb"


def test_read_folder_parent_and_archive_agree(tmp_path):
    root = make_acl_tree(tmp_path / "d")
    a = imdb.read_acl_imdb(root)
    b = imdb.read_acl_imdb(root.parent)  # the folder that holds aclImdb/
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="aclImdb")
    c = imdb.read_acl_imdb(archive)
    assert a == b == c
    assert len(a["train"]) == len(a["test"]) == 12
    assert {r.label for r in a["train"]} == {0, 1}
    assert a["train"][0].id == "train/neg/0_2"


def test_wrong_data_dir_says_what_was_expected(tmp_path):
    (tmp_path / "something.txt").write_text("x")
    for bad in (tmp_path, tmp_path / "missing", tmp_path / "something.txt"):
        with pytest.raises(AttnlabError, match="expected an extracted aclImdb/"):
            imdb.read_acl_imdb(bad)


def test_validation_is_carved_from_train_with_a_seed(tmp_path):
    root = make_acl_tree(tmp_path, n=10)
    s1 = imdb.load_splits(data_dir=root, val_fraction=0.25, seed=1)
    s2 = imdb.load_splits(data_dir=root, val_fraction=0.25, seed=1)
    s3 = imdb.load_splits(data_dir=root, val_fraction=0.25, seed=2)
    assert s1.val == s2.val and s1.val != s3.val
    assert len(s1.val) == 5 and len(s1.train) == 15 and len(s1.test) == 20
    assert not {r.id for r in s1.val} & {r.id for r in s1.train}
    assert all(r.id.startswith("train/") for r in s1.val)  # never from test


def write_tsv(path, rows):
    path.write_bytes(b"".join(r if isinstance(r, bytes) else r.encode() for r in rows))
    return path


def test_tsv_reads_header_tabs_and_labels(tmp_path):
    f = write_tsv(tmp_path / "a.tsv", ["id\tlabel\ttext\n", "1\tpos\tgood\tfilm\n", "\n", "2\tNEG\tbad\n"])
    reviews = imdb.read_tsv(f)
    assert [(r.id, r.label, r.text) for r in reviews] == [("1", 1, "good\tfilm"), ("2", 0, "bad")]


def test_tsv_missing_column_names_file_and_line(tmp_path):
    f = write_tsv(tmp_path / "bad.tsv", ["1\tpos\tgood\n", "2\tneg\n"])
    with pytest.raises(AttnlabError, match=r"bad\.tsv line 2 has 2 column"):
        imdb.read_tsv(f)


def test_tsv_unknown_label(tmp_path):
    f = write_tsv(tmp_path / "bad.tsv", ["1\tpos\tgood\n", "2\tmeh\tso-so\n"])
    with pytest.raises(AttnlabError, match=r"line 2 has the unknown label 'meh'"):
        imdb.read_tsv(f)


def test_tsv_non_utf8_is_replaced_with_a_warning(tmp_path, capsys):
    f = write_tsv(tmp_path / "latin.tsv", ["1\tpos\tgood\n", b"2\tneg\tna\xefve and bad\n"])
    reviews = imdb.read_tsv(f)
    assert reviews[1].text == "na\ufffdve and bad"
    assert "latin.tsv:2" in capsys.readouterr().err


def test_tsv_splits_and_errors(tmp_path):
    tr = write_tsv(tmp_path / "tr.tsv", [f"{i}\t{'pos' if i % 2 else 'neg'}\ttext {i}\n" for i in range(10)])
    s = imdb.load_splits(train=tr, val_fraction=0.2, seed=0)
    assert len(s.train) == 8 and len(s.val) == 2 and s.test == []
    with pytest.raises(AttnlabError, match="either --data-dir"):
        imdb.load_splits(data_dir=tmp_path, train=tr)
    with pytest.raises(AttnlabError, match="no data"):
        imdb.load_splits()
    with pytest.raises(AttnlabError, match="does not exist"):
        imdb.read_tsv(tmp_path / "nope.tsv")


def test_fetch_downloads_verifies_and_extracts(tmp_path, monkeypatch):
    download = pytest.importorskip("attnlab.data.download")
    src = make_acl_tree(tmp_path / "src", n=2)
    archive = tmp_path / "src" / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="aclImdb")
    seen = {}

    def fake_fetch(url, dest, *, md5=None, sha256=None, desc=""):
        seen.update(url=url, sha256=sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(archive.read_bytes())
        return dest

    monkeypatch.setattr(download, "fetch_url", fake_fetch)
    out = imdb.fetch(tmp_path / "data")
    assert out == tmp_path / "data" / "aclImdb"
    assert seen == {"url": imdb.URL, "sha256": imdb.SHA256}
    assert len(imdb.read_acl_imdb(out)["train"]) == 4


# --------------------------------------------------------------------------- word vectors


def test_read_embeddings(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("the 1 2 3\nfilm 0.5 -1 2e-1\nthe 9 9 9\ngood 1 1 1\n")
    vectors, vocab = read_embeddings(f)
    assert vocab == ["<pad>", "<unk>", "the", "film", "good"]  # a repeated word keeps its first vector
    assert vectors.dtype == torch.float32 and vectors.shape == (5, 3)
    assert torch.equal(vectors[0], torch.zeros(3)) and torch.equal(vectors[1], torch.zeros(3))
    assert torch.allclose(vectors[3], torch.tensor([0.5, -1.0, 0.2]))
    v2, vocab2 = read_embeddings(f, vocab_size=1)
    assert vocab2 == ["<pad>", "<unk>", "the"] and v2.shape == (3, 3)


def test_read_embeddings_gz_and_word2vec_header(tmp_path):
    f = tmp_path / "v.txt.gz"
    with gzip.open(f, "wt", encoding="utf-8") as g:
        g.write("2 4\nhello 1 2 3 4\nworld 5 6 7 8\n")
    vectors, vocab = read_embeddings(f)
    assert vocab[2:] == ["hello", "world"] and vectors.shape == (4, 4)


@pytest.mark.parametrize("body,line", [("a 1 2\nb 1\n", 2), ("a 1 2\nb 1 2\nc 1 x\n", 3)])
def test_malformed_embeddings_name_the_line(tmp_path, body, line):
    f = tmp_path / "v.txt"
    f.write_text(body)
    with pytest.raises(AttnlabError, match=f"line {line} "):
        read_embeddings(f)


def test_missing_embeddings_file(tmp_path):
    with pytest.raises(AttnlabError, match="--embeddings"):
        read_embeddings(tmp_path / "nope.txt")


# --------------------------------------------------------------------------- features


def test_tokenize_texts_caches_and_parallel_equals_serial(tmp_path, monkeypatch):
    texts = [f"Review {i}: Mr. Smith's film was {'great' if i % 2 else 'awful'}...<br />Really!" for i in range(40)]
    texts.append("")
    serial = features.tokenize_texts(texts, cache_dir=tmp_path, workers=1)
    assert serial.tokens(0) == ["review", "0", ":", "mr.", "smith", "'s", "film", "was", "awful",
                                "...", "really", "!"]
    assert serial.tokens(40) == []
    assert len(list(tmp_path.glob("tokens-*.npz"))) == 1
    cached = features.tokenize_texts(texts, cache_dir=tmp_path)
    assert cached.vocab == serial.vocab and np.array_equal(cached.ids, serial.ids)
    monkeypatch.setattr(features, "_SERIAL_BELOW", 10)
    monkeypatch.setattr(features, "_CHUNK", 7)
    parallel = features.tokenize_texts(texts, workers=2, use_cache=False)
    assert [parallel.tokens(i) for i in range(len(texts))] == [serial.tokens(i) for i in range(len(texts))]


def test_encode_truncates_pads_and_defines_empty_reviews(tmp_path):
    tok = features.tokenize_texts(["a b c d e", "", "b zzz"], use_cache=False)
    vocab = ["<pad>", "<unk>", "a", "b", "c"]
    enc = features.encode(tok, [0, 1, 2], {w: i for i, w in enumerate(vocab)}, max_len=3)
    assert enc["ids"].tolist() == [[2, 3, 4], [1, 0, 0], [3, 1, 0]]
    assert enc["lengths"].tolist() == [3, 1, 2]
    assert features.build_vocab(tok, [0, 2], max_size=2) == ["<pad>", "<unk>", "b", "a"]
