"""Hostile inputs to `attnlab train text` / `attnlab eval text`: odd aclImdb folders, UTF-16 and
UTF-32 TSV files, a directory given as a TSV file, a training set of one label.

Each must give one `error: ...` line and exit code 2 (or, for a folder named like a review, a
warning and a normal run), never a traceback.
"""

from __future__ import annotations

import codecs
import os
import pathlib

import pytest

from attnlab.cli import main
from attnlab.data import imdb
from attnlab.errors import AttnlabError

WORDS = {"pos": "great wonderful superb", "neg": "awful boring terrible"}


def make_acl(root, n=4, labels=("pos", "neg")):
    """A small aclImdb/ with n reviews per split and label; `labels` are the train labels that get reviews."""
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            if split == "train" and label not in labels:
                continue
            for i in range(n):
                (d / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(f"a {WORDS[label]} film number {i}")
    return root / "aclImdb"


def vectors(tmp_path):
    f = tmp_path / "vectors.txt"
    f.write_text("".join(f"{w} 0.1 0.2 0.3\n" for w in " ".join(WORDS.values()).split() + ["a", "film"]))
    return f


def train_text(tmp_path, *data_args):
    return main(["train", "text", "--model", "logreg", "--preset", "tiny", "--embeddings", str(vectors(tmp_path)),
                 "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--out", str(tmp_path / "run"),
                 "--no-progress", *data_args])


# --------------------------------------------------------------------------- aclImdb folder oddities


def test_folder_named_like_a_review_is_skipped_with_a_warning(tmp_path, run_cli):
    root = make_acl(tmp_path)
    (root / "train" / "pos" / "x.txt").mkdir()
    rc, err = run_cli(lambda: train_text(tmp_path, "--data-dir", str(root)))
    assert rc == 0
    assert f"warning: skipped 1 folder(s) named like review files: {root}/train/pos/x.txt\n" in err
    assert len(imdb.read_acl_imdb(root)["train"]) == 8  # the folder is not a review


def test_unreadable_review_names_the_file(tmp_path, monkeypatch, run_cli):
    # Tests run as root, which chmod 000 does not stop: the read itself is made to fail instead.
    root = make_acl(tmp_path)
    locked = root / "train" / "neg" / "1_2.txt"
    read_bytes = pathlib.Path.read_bytes

    def refuse(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    rc, err = run_cli(lambda: train_text(tmp_path, "--data-dir", str(root)))
    assert rc == 2
    assert err == (f"error: cannot read review file '{locked}': Permission denied; make it readable "
                   "(e.g. chmod a+r) or delete it\n")


def test_broken_symlink_named_like_a_review(tmp_path, run_cli):
    root = make_acl(tmp_path)
    link = root / "test" / "pos" / "99_9.txt"
    link.symlink_to(tmp_path / "gone.txt")
    rc, err = run_cli(lambda: train_text(tmp_path, "--data-dir", str(root)))
    assert rc == 2
    assert err == (f"error: review file '{link}' is a broken symbolic link (to '{tmp_path}/gone.txt'); "
                   "restore its target or delete the link\n")


def test_eval_text_reports_the_same_oddities(tmp_path, capsys, run_cli):
    root = make_acl(tmp_path)
    assert train_text(tmp_path, "--data-dir", str(root)) == 0
    capsys.readouterr()
    link = root / "test" / "neg" / "7_1.txt"
    link.symlink_to(tmp_path / "gone.txt")
    rc, err = run_cli(lambda: main(["eval", "text", "--checkpoint", str(tmp_path / "run"), "--data-dir",
                                            str(root), "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
                                            "--out", str(tmp_path / "ev")]))
    assert rc == 2 and err.startswith(f"error: review file '{link}' is a broken symbolic link")
    assert not (tmp_path / "ev").exists()


def test_a_pipe_named_like_a_review_is_not_read(tmp_path):
    root = make_acl(tmp_path)
    os.mkfifo(root / "train" / "pos" / "5_9.txt")  # reading it would wait forever
    with pytest.raises(AttnlabError, match=r"5_9\.txt' is not a regular file"):
        imdb.read_acl_imdb(root)


# --------------------------------------------------------------------------- TSV files


ROWS = "1\tpos\ta great film\n2\tneg\tan awful film\n3\tpos\tsuperb\n4\tneg\tboring\n"


@pytest.mark.parametrize("encoding,bom,family,iconv", [
    ("utf-16", b"", "UTF-16", "utf-16"),  # Python writes the byte-order mark
    ("utf-16-le", b"", "UTF-16", "utf-16le"),  # no mark: told from its NUL bytes
    ("utf-16-be", b"", "UTF-16", "utf-16be"),
    ("utf-32", b"", "UTF-32", "utf-32"),
    ("utf-32-le", b"", "UTF-32", "utf-32le"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16", "utf-16"),
], ids=["utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le", "utf-16le-bom"])
def test_wide_tsv_is_named_with_the_conversion(tmp_path, encoding, bom, family, iconv, run_cli):
    f = tmp_path / "train.tsv"
    f.write_bytes(bom + ROWS.encode(encoding))
    rc, err = run_cli(lambda: train_text(tmp_path, "--train", str(f)))
    assert rc == 2
    assert err == (f"error: TSV file '{f}' looks like {family} text; convert it to UTF-8, e.g. with "
                   f"`iconv -f {iconv} -t utf-8`\n")


def test_directory_given_as_a_tsv_file(tmp_path, run_cli):
    rc, err = run_cli(lambda: train_text(tmp_path, "--train", str(tmp_path)))
    assert rc == 2
    assert err == (f"error: TSV file '{tmp_path}' is a directory; --train/--dev/--test take a file with lines "
                   "id<TAB>label<TAB>text (for an aclImdb/ folder use --data-dir)\n")


def test_unreadable_tsv_names_the_file(tmp_path, capsys, monkeypatch):
    f = tmp_path / "train.tsv"
    f.write_text(ROWS)
    real_open = open

    def refuse(path, *args, **kwargs):
        if str(path) == str(f):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(imdb, "open", refuse, raising=False)  # shadows the builtin inside attnlab.data.imdb
    with pytest.raises(AttnlabError, match="Permission denied; check that it is a readable file$") as e:
        imdb.read_tsv(f)
    assert str(e.value) == f"cannot read TSV file '{f}': Permission denied; check that it is a readable file"


def test_wide_encoding_detection():
    assert imdb.wide_encoding(b"id\tlabel") is None
    assert imdb.wide_encoding("caf\u00e9\t\u00e9t\u00e9".encode("utf-8")) is None
    assert imdb.wide_encoding(b"") is None
    assert imdb.wide_encoding("ab".encode("utf-16-le")) == "UTF-16LE"
    assert imdb.wide_encoding("ab".encode("utf-32-be")) == "UTF-32BE"
    assert imdb.wide_encoding(codecs.BOM_UTF32_LE + "ab".encode("utf-32-le")) == "UTF-32"  # not UTF-16


# --------------------------------------------------------------------------- one label


def test_tsv_of_one_label_is_refused(tmp_path, run_cli):
    f = tmp_path / "train.tsv"
    f.write_text("".join(f"{i}\tpos\ta great film {i}\n" for i in range(10)))
    rc, err = run_cli(lambda: train_text(tmp_path, "--train", str(f)))
    assert rc == 2
    assert err == ("error: all 9 training reviews are labelled 'pos', so there is nothing to learn; a classifier "
                   f"needs both labels: add lines labelled neg to {f}\n")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_acl_folder_of_one_label_is_refused(tmp_path, run_cli):
    root = make_acl(tmp_path, labels=("neg",))  # train/pos is empty
    rc, err = run_cli(lambda: train_text(tmp_path, "--data-dir", str(root)))
    assert rc == 2
    # 4 train/neg reviews, less the 1 carved for validation
    assert err == ("error: all 3 training reviews are labelled 'neg', so there is nothing to learn; a classifier "
                   f"needs both labels: add reviews to the train/pos/ folder of {root}\n")


def test_one_label_is_fine_when_only_evaluating(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("".join(f"{i}\tneg\tawful {i}\n" for i in range(5)))
    splits = imdb.load_splits(train=f, val_fraction=0.2, check_labels=False)
    assert [r.id for r in splits.train] == ["0", "1", "3", "4"] and [r.id for r in splits.val] == ["2"]
