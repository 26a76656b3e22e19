"""GloVe 6B: fetch from a small zip in the real layout, served by a local HTTP server (never the
internet): only the 50-d member, cut to the first N words; resume, checksum, cleanup after a failure."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from attnlab import cli
from attnlab.data import glove
from attnlab.data.embeddings import read_embeddings
from attnlab.errors import AttnlabError

WORDS = ["the", ",", ".", "of", "to", "and"]  # the first words of the real glove.6B.50d.txt


def vector_line(i: int, word: str, dim: int = 50) -> str:
    return word + "".join(f" {(i * dim + j) / 1000:.6f}" for j in range(dim)) + "\n"


LINES_50D = [vector_line(i, w) for i, w in enumerate(WORDS)]


def make_zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


# the real archive holds the four sizes side by side, at its top level
ARCHIVE = make_zip({f"glove.6B.{d}d.txt": "".join(vector_line(i, w, d) for i, w in enumerate(WORDS))
                    for d in (50, 100, 200, 300)})
SHA256 = hashlib.sha256(ARCHIVE).hexdigest()


@pytest.fixture
def server(file_server):
    file_server.files["/glove.6B.zip"] = ARCHIVE
    return file_server


def test_the_published_source():
    assert glove.URL == "https://nlp.stanford.edu/data/glove.6B.zip"
    assert glove.SHA256 == "617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"
    assert glove.output_name(None) == "glove.6B.50d.txt"
    assert glove.output_name(50000) == "glove.6B.50d.top50000.txt"


def test_fetch_keeps_the_first_words_of_the_50d_member_only(server, tmp_path: Path):
    dest = tmp_path / "data"
    out = glove.fetch(dest, vocab_size=4, url=f"{server.url}/glove.6B.zip", sha256=SHA256)
    assert out == dest / "glove.6B.50d.top4.txt"
    assert out.read_text() == "".join(LINES_50D[:4])
    assert sorted(p.name for p in dest.iterdir()) == ["glove.6B.50d.top4.txt", "glove.6B.zip"]
    vectors, vocab = read_embeddings(out)  # what --embeddings reads
    assert vocab == ["<pad>", "<unk>", "the", ",", ".", "of"] and tuple(vectors.shape) == (6, 50)
    assert vectors[2, :3].tolist() == pytest.approx([0.0, 0.001, 0.002])
    # another cut, or the whole file, comes from the zip already there: no second download
    full = glove.fetch(dest, url=f"{server.url}/glove.6B.zip", sha256=SHA256)
    assert full == dest / "glove.6B.50d.txt" and full.read_text() == "".join(LINES_50D)
    bigger = glove.fetch(dest, vocab_size=100, url=f"{server.url}/glove.6B.zip", sha256=SHA256)
    assert bigger.name == "glove.6B.50d.top100.txt" and bigger.read_text() == full.read_text()
    assert server.ranges == [None]


def test_an_interrupted_download_resumes(server, tmp_path: Path):
    server.cut_at = 1000
    with pytest.raises(AttnlabError, match=r"interrupted.*the 1000 bytes received are kept in .*glove.6B.zip.partial"):
        glove.fetch(tmp_path, vocab_size=2, url=f"{server.url}/glove.6B.zip", sha256=SHA256)
    assert [p.name for p in tmp_path.iterdir()] == ["glove.6B.zip.partial"]
    out = glove.fetch(tmp_path, vocab_size=2, url=f"{server.url}/glove.6B.zip", sha256=SHA256)
    assert out.read_text() == "".join(LINES_50D[:2])
    assert server.ranges == [None, "bytes=1000-"]


def test_a_checksum_mismatch_leaves_nothing(server, tmp_path: Path):
    with pytest.raises(AttnlabError, match=f"checksum mismatch for .*expected sha256 {'0' * 64}, got {SHA256}"):
        glove.fetch(tmp_path / "data", url=f"{server.url}/glove.6B.zip", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("members,words", [
    ({"glove.6B.100d.txt": "the 1.0\n"}, r"holds no glove.6B.50d.txt \(it holds glove.6B.100d.txt\)"),
    ({"glove.6B.50d.txt": LINES_50D[0] + "of 0.1 0.2\n"}, "line 2 of glove.6B.50d.txt has 2 values, expected 50"),
    ({"glove.6B.50d.txt": ""}, "glove.6B.50d.txt is empty"),
])
def test_a_wrong_archive_is_a_clear_error_and_writes_nothing(server, tmp_path: Path, members, words):
    server.files["/bad.zip"] = data = make_zip(members)
    with pytest.raises(AttnlabError, match=words + ".*delete it and run the same command again"):
        glove.fetch(tmp_path, url=f"{server.url}/bad.zip", sha256=hashlib.sha256(data).hexdigest())
    assert [p.name for p in tmp_path.iterdir()] == ["glove.6B.zip"]  # the verified download stays


def test_a_damaged_zip_is_a_clear_error(tmp_path: Path):
    (tmp_path / "glove.6B.zip").write_bytes(b"PK not really a zip")
    with pytest.raises(AttnlabError, match="is not a valid zip archive.*delete it"):
        glove.extract_vectors(tmp_path / "glove.6B.zip", tmp_path / "out.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["glove.6B.zip"]


def test_cli_fetch_glove_and_list(server, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(glove, "URL", f"{server.url}/glove.6B.zip")
    monkeypatch.setattr(glove, "SHA256", SHA256)
    assert cli.main(["data", "fetch", "glove", "--vocab-size", "3", "--dest", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'glove.6B.50d.top3.txt'}\n"
    assert (tmp_path / "glove.6B.50d.top3.txt").read_text() == "".join(LINES_50D[:3])
    assert cli.main(["data", "fetch", "glove", "--vocab-size", "0", "--dest", str(tmp_path)]) == 2
    assert "--vocab-size must be >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "cifar10", "--vocab-size", "3", "--dest", str(tmp_path / "c")]) == 2
    assert "--vocab-size applies to glove only" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert cli.main(["data", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["imdb", "cifar10", "shakespeare", "glove", "tatoeba"]
    assert listing[3].startswith("glove        GloVe 6B 50-d word vectors")


def test_a_zip_downloaded_elsewhere_is_used(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(glove, "SHA256", SHA256)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        offline = f"http://127.0.0.1:{s.getsockname()[1]}/glove.6B.zip"
    with pytest.raises(AttnlabError, match=r"could not reach URL: .*; download it elsewhere and save it as "
                                           r".*glove.6B.zip, then run the same command again"):
        glove.fetch(tmp_path, url=offline)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "glove.6B.zip").write_bytes(ARCHIVE)  # what the user saved
    assert glove.fetch(tmp_path, vocab_size=1, url=offline).read_text() == LINES_50D[0]
