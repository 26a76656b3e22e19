"""fetch_url against a local HTTP server (never the internet): resume, checksum, offline, cleanup after
a failure; safe extraction that leaves nothing behind when it fails."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import zipfile

import pytest

from attnlab.data.download import extract_archive, fetch_url, partial_path
from attnlab.errors import AttnlabError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(file_server):
    file_server.files.update({"/file.bin": PAYLOAD, "/f": PAYLOAD})
    return file_server


def test_download_with_checksum_and_skip_when_present(server, tmp_path):
    dest = fetch_url(f"{server.url}/file.bin", tmp_path / "sub" / "file.bin", sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD and sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file.bin"]
    fetch_url(f"{server.url}/file.bin", dest, sha256=SHA256)
    assert server.ranges == [None]  # the second call found the verified file: no request


def test_resume_uses_range(server, tmp_path):
    dest = tmp_path / "file.bin"
    assert partial_path(dest) == tmp_path / "file.bin.partial"
    (tmp_path / "file.bin.partial").write_bytes(PAYLOAD[:300_000])  # an interrupted earlier attempt
    fetch_url(f"{server.url}/file.bin", dest, md5=MD5)
    assert server.ranges == ["bytes=300000-"]
    assert dest.read_bytes() == PAYLOAD


def test_resume_continues_a_part_file_of_earlier_versions(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])  # what attnlab called it before
    assert fetch_url(f"{server.url}/file.bin", tmp_path / "file.bin", md5=MD5).read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=1000-"] and sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_dropped_connection_then_rerun_resumes(server, tmp_path):
    server.cut_at = 200_000
    dest = tmp_path / "new" / "file.bin"
    with pytest.raises(AttnlabError, match=r"interrupted.*the 200000 bytes received are kept in .*file.bin.partial: "
                                           r"run the same command again to resume"):
        fetch_url(f"{server.url}/file.bin", dest, md5=MD5)
    assert [(p.name, p.stat().st_size) for p in dest.parent.iterdir()] == [("file.bin.partial", 200_000)]
    assert fetch_url(f"{server.url}/file.bin", dest, md5=MD5).read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=200000-"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def test_connection_dropped_before_any_byte_leaves_nothing(server, tmp_path):
    server.cut_at = 0
    with pytest.raises(AttnlabError, match="interrupted"):
        fetch_url(f"{server.url}/file.bin", tmp_path / "a" / "b" / "file.bin", md5=MD5)
    assert list(tmp_path.iterdir()) == []  # no empty .partial, no empty folders


def test_server_ignoring_range_restarts(server, tmp_path):
    server.honour_range = False
    (tmp_path / "f.partial").write_bytes(b"garbage")
    assert fetch_url(f"{server.url}/f", tmp_path / "f", md5=MD5).read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_and_explains(server, tmp_path):
    with pytest.raises(AttnlabError, match=f"expected md5 {'0' * 32}") as info:
        fetch_url(f"{server.url}/file.bin", tmp_path / "data" / "file.bin", md5="0" * 32)
    msg = str(info.value)
    assert "expected md5 " + "0" * 32 in msg and MD5 in msg and "--data-dir" in msg
    assert list(tmp_path.iterdir()) == []  # neither the file, nor its .partial, nor the folder made for it


def test_offline_and_http_errors(server, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AttnlabError, match=r"could not reach URL: http://127.0.0.1:\d+/x .*--data-dir PATH"):
        fetch_url(f"http://127.0.0.1:{port}/x", tmp_path / "new" / "x")
    with pytest.raises(AttnlabError, match="HTTP 404"):
        fetch_url(f"{server.url}/missing", tmp_path / "new" / "deeper" / "y")
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    with pytest.raises(AttnlabError, match="HTTP 404"):
        fetch_url(f"{server.url}/missing", tmp_path / "kept" / "y")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and list((tmp_path / "kept").iterdir()) == []


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_extract_tar_and_zip(tmp_path):
    _tar(tmp_path / "a.tar.gz", [("d/x.txt", b"hello", "file"), ("d/link", "x.txt", "sym")])
    out = extract_archive(tmp_path / "a.tar.gz", tmp_path / "out")
    assert (out / "d" / "x.txt").read_bytes() == b"hello"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("e/y.txt", "zip")
    assert (extract_archive(tmp_path / "b.zip", tmp_path / "out2") / "e" / "y.txt").read_text() == "zip"
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["e"]  # no scratch folder left


def test_extract_merges_into_an_existing_folder(tmp_path):
    (tmp_path / "out" / "e").mkdir(parents=True)
    (tmp_path / "out" / "e" / "mine.txt").write_text("kept")
    (tmp_path / "out" / "e" / "y.txt").write_text("old")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("e/y.txt", "new")
        zf.writestr("e/f/z.txt", "z")
    extract_archive(tmp_path / "b.zip", tmp_path / "out")
    files = {str(p.relative_to(tmp_path / "out")): p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert files == {"e/mine.txt": "kept", "e/y.txt": "new", "e/f/z.txt": "z"}


def test_extract_failing_half_way_leaves_nothing(tmp_path):
    with zipfile.ZipFile(tmp_path / "c.zip", "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("d/first.txt", b"A" * 1000)
        zf.writestr("d/second.txt", b"B" * 1000)
    data = bytearray((tmp_path / "c.zip").read_bytes())
    data[data.index(b"B" * 1000) + 500] ^= 1  # the second member's CRC no longer matches
    (tmp_path / "c.zip").write_bytes(bytes(data))
    with pytest.raises(AttnlabError, match="c.zip is not a valid archive .*delete it and download again"):
        extract_archive(tmp_path / "c.zip", tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()  # not even the first member, nor the folders
    (tmp_path / "old").mkdir()
    with pytest.raises(AttnlabError, match="not a valid archive"):
        extract_archive(tmp_path / "c.zip", tmp_path / "old")
    assert list((tmp_path / "old").iterdir()) == []


@pytest.mark.parametrize("members", [
    [("../evil.txt", b"x", "file")],
    [("/abs.txt", b"x", "file")],
    [("d/link", "../../outside", "sym")],
])
def test_extract_refuses_traversal(tmp_path, members):
    _tar(tmp_path / "bad.tgz", members)
    with pytest.raises(AttnlabError, match="outside"):
        extract_archive(tmp_path / "bad.tgz", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_extract_refuses_zip_traversal_and_junk(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(AttnlabError, match="outside"):
        extract_archive(tmp_path / "bad.zip", tmp_path / "out")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(AttnlabError, match="not a valid archive"):
        extract_archive(tmp_path / "junk.tar.gz", tmp_path / "out")
