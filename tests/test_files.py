"""Atomic writes: a reader sees the old file or the new one, and a failure leaves nothing."""

from __future__ import annotations

import hashlib
import json

import pytest

from attnlab.files import file_digest, save_figure, write_atomic, write_json, writing_atomically


def test_writing_atomically_leaves_nothing_when_it_fails(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(RuntimeError, match="disk full"):
        with writing_atomically(target) as f:
            f.write(b"half of it")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # no scratch file, no folders made for it
    with writing_atomically(target) as f:
        f.write(b"all of it")
    assert target.read_bytes() == b"all of it" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_rewrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"step": 1})
    with pytest.raises(RuntimeError, match="^interrupted$"):
        with writing_atomically(target) as f:
            f.write(b'{"step": ')
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"step": 1} and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_atomic(target, "caf\u00e9\n")
    assert target.read_bytes() == "caf\u00e9\n".encode()


def test_save_figure_writes_the_format_of_the_suffix(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = save_figure(fig, tmp_path / "f.png"), save_figure(fig, tmp_path / "f.svg")
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:1000]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_file_digest_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000  # more than one read
    (tmp_path / "d").write_bytes(data)
    assert file_digest(tmp_path / "d", "sha256") == hashlib.sha256(data).hexdigest()
    assert file_digest(tmp_path / "d", "md5") == hashlib.md5(data).hexdigest()
