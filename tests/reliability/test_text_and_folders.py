"""Text as every reader of a person's text reads it (no BOM, UTF-16 named, NUL refused), image
folders whose test side misses classes, and `predict` that stops when its reader has left."""

from __future__ import annotations

import codecs
import io
import json
import subprocess
import sys

import pytest

from attnlab.cli import main
from attnlab.data.decoding import decode_blocks, decode_text
from attnlab.data.dialogue import prepare_lm_data
from attnlab.data.image_folder import load_image_folder
from attnlab.data.shakespeare import load_text
from attnlab.data.stream import prepare_stream
from attnlab.errors import AttnlabError

TURNS = "\n\n".join(f"A{i % 4}:\nthe cat sat on mat {i % 9} ." for i in range(60))


# ---- one decoder, whole or piece by piece -------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 5, 4096])
def test_decoding_in_pieces_is_decoding_the_whole(size):
    data = codecs.BOM_UTF8 + "na\u00efve caf\u00e9\n\u4e2d\u6587 \U0001f600\n".encode() * 50
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    assert "".join(decode_blocks(pieces, "x")) == decode_text(data, "x") == data.decode("utf-8-sig")


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_a_bad_byte_is_named_with_its_line_whatever_the_pieces(size):
    data = b"line one\nline two\n" * 3 + b"caf\xe9\n"
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    with pytest.raises(AttnlabError, match=r"^x is not UTF-8 text \(byte 0xe9 on line 7\); convert it to UTF-8"):
        "".join(decode_blocks(pieces, "x"))


def test_nul_and_wide_text_are_named():
    with pytest.raises(AttnlabError, match="^x holds NUL bytes, so it is binary data, not text; pass UTF-8 text$"):
        decode_text(b"ab\0c", "x")
    for encoding, named in (("utf-16", "utf-16"), ("utf-16-le", "utf-16le"), ("utf-32", "utf-32")):
        with pytest.raises(AttnlabError, match=f"^x looks like UTF-{named[4:6]} text; convert it to UTF-8, e.g. "
                                               f"with `iconv -f {named} -t utf-8`$"):
            decode_text(TURNS.encode(encoding), "x")


# ---- the language models' --data ----------------------------------------------------------------------
@pytest.fixture
def texts(tmp_path):
    paths = {name: tmp_path / f"{name}.txt" for name in ("bom", "nul", "utf16")}
    paths["bom"].write_text(TURNS, encoding="utf-8-sig")
    paths["nul"].write_text(TURNS.replace("cat", "c\0t"))
    paths["utf16"].write_text(TURNS, encoding="utf-16")
    return paths


def test_a_byte_order_mark_is_no_token(texts):
    assert load_text(texts["bom"]) == TURNS
    dialogue = prepare_lm_data(load_text(texts["bom"]), context=16, kind="char")
    stream = prepare_stream(texts["bom"], tokenizer="char")
    for tok in (dialogue.tokenizer, stream.tokenizer):
        assert "\ufeff" not in tok.to_dict()["vocab"]
    assert prepare_stream(texts["bom"], tokenizer="char").tokenizer.to_dict() == stream.tokenizer.to_dict()


@pytest.mark.parametrize("mode", ["dialogue", "stream"])
def test_nul_and_utf16_data_are_refused_as_predict_refuses_them(texts, mode):
    def read(path):
        return load_text(path) if mode == "dialogue" else prepare_stream(path, tokenizer="char")

    with pytest.raises(AttnlabError, match=f"^data file '{texts['nul']}' holds NUL bytes, so it is binary data"):
        read(texts["nul"])
    with pytest.raises(AttnlabError, match=f"^data file '{texts['utf16']}' looks like UTF-16 text; convert it to "
                                           "UTF-8, e.g. with `iconv -f utf-16 -t utf-8`$"):
        read(texts["utf16"])


# ---- image folders: a class the test side lacks is a warning, as on the training side ------------------
def test_an_empty_test_class_folder_is_a_warning(tmp_path, capsys):
    from PIL import Image

    for split, classes in (("train", ("cat", "dog", "fox")), ("test", ("cat",))):
        for name in classes:
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(tmp_path / split / name / f"{i}.png")
    (tmp_path / "test" / "dog").mkdir()  # empty; no test/fox/ at all
    train, test = load_image_folder(tmp_path, image_size=8)
    assert len(train.labels) == 6 and test.labels.tolist() == [0, 0]
    assert capsys.readouterr().err == (
        f"warning: the class folder(s) dog, fox of '{tmp_path}/test' hold no images; the test accuracy says "
        "nothing about them (add images, or remove the classes)\n")


# ---- predict stops when the reader of its output has left ----------------------------------------------
@pytest.fixture(scope="module")
def text_run(tmp_path_factory, task_flags):
    run = tmp_path_factory.mktemp("predict") / "text"
    assert main(["train", "text", "--preset", "tiny", *task_flags["text"], "--no-progress", "--out", str(run)]) == 0
    return run


class LeftReader(io.TextIOBase):
    """stdout piped into `head -1`: the first flush finds the reader gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd  # where the CLI points stdout once the pipe is broken (os.devnull)

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def test_predict_stops_working_when_its_reader_has_left(text_run, tmp_path, monkeypatch, capsys):
    import attnlab.data.sentiment

    lines = "\n".join(f"good movie number {i}" for i in range(5000)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines)))
    encoded = []
    real = attnlab.data.sentiment.encode_texts
    monkeypatch.setattr(attnlab.data.sentiment, "encode_texts",
                        lambda texts, *a, **k: encoded.append(len(texts)) or real(texts, *a, **k))
    with open(tmp_path / "stdout", "w") as fd:
        monkeypatch.setattr(sys, "stdout", LeftReader(fd.fileno()))
        assert main(["predict", "--checkpoint", str(text_run)]) == 0
        monkeypatch.undo()
    assert capsys.readouterr().err == ""
    assert 0 < sum(encoded) < 5000  # it stopped after the first part, not after all 5,000 reviews


def test_predict_into_head_exits_quietly(text_run, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(f"a good movie {i}" for i in range(3000)))
    with open(reviews, "rb") as stdin:
        p = subprocess.Popen([sys.executable, "-m", "attnlab.cli", "predict", "--checkpoint", str(text_run), "--json"],
                             stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.readline()
        p.stdout.close()  # what `| head -1` does
        err = p.stderr.read()
        assert p.wait(timeout=120) == 0
    assert json.loads(first)["id"] == 1 and err == b""
