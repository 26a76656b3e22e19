"""Tatoeba fra-eng: fetch from a small zip in the real layout, served by a local HTTP server (never the
internet): unpacked to fra-eng/fra.txt, attribution printed, checksum and damaged zips refused."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from attnlab.data import tatoeba
from attnlab.data.pairs import read_pairs
from attnlab.errors import AttnlabError

FRA = ("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)\n"
       "Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #509819 (Aiji)\n")


def make_zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


ARCHIVE = make_zip({"fra.txt": FRA, "_about.txt": "about the file"})  # the public zip's two members


def test_the_public_source():
    assert tatoeba.URL == "https://www.manythings.org/anki/fra-eng.zip"
    assert "www.manythings.org/anki and tatoeba.org" in tatoeba.ATTRIBUTION and "CC BY 2.0" in tatoeba.ATTRIBUTION


def test_fetch_unpacks_fra_txt_and_prints_the_attribution(file_server, tmp_path: Path, capsys):
    file_server.files["/fra-eng.zip"] = ARCHIVE
    out = tatoeba.fetch(tmp_path, url=f"{file_server.url}/fra-eng.zip",
                        sha256=hashlib.sha256(ARCHIVE).hexdigest())
    assert out == tmp_path / "fra-eng" / "fra.txt"
    assert read_pairs(out) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    err = capsys.readouterr().err
    assert "www.manythings.org/anki and tatoeba.org" in err and hashlib.sha256(ARCHIVE).hexdigest() in err
    assert tatoeba.fetch(tmp_path, url=f"{file_server.url}/nothing-there.zip") == out  # present: no download


def test_a_checksum_mismatch_deletes_the_download(file_server, tmp_path: Path):
    file_server.files["/fra-eng.zip"] = ARCHIVE
    with pytest.raises(AttnlabError, match="checksum mismatch for .*fra-eng.zip"):
        tatoeba.fetch(tmp_path, url=f"{file_server.url}/fra-eng.zip", sha256="0" * 64)
    assert not (tmp_path / "fra-eng").exists() and not (tmp_path / "fra-eng.zip").exists()


@pytest.mark.parametrize("payload, match", [
    (b"not a zip at all", r"is not a valid fra-eng.zip \(File is not a zip file\); it was deleted"),
    (make_zip({"deu.txt": FRA}), r"is not a valid fra-eng.zip \(no fra.txt in it"),
])
def test_a_damaged_zip_is_one_clear_error_and_leaves_nothing(file_server, tmp_path: Path, payload, match):
    file_server.files["/fra-eng.zip"] = payload
    with pytest.raises(AttnlabError, match=match):
        tatoeba.fetch(tmp_path, url=f"{file_server.url}/fra-eng.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_zip_without_pairs_leaves_no_fra_txt(file_server, tmp_path: Path):
    file_server.files["/fra-eng.zip"] = make_zip({"fra.txt": "one column only\n"})
    with pytest.raises(AttnlabError, match=r"line 1 has one column"):
        tatoeba.fetch(tmp_path, url=f"{file_server.url}/fra-eng.zip")
    assert not (tmp_path / "fra-eng" / "fra.txt").exists()
