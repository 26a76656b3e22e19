"""Any text as one token stream, with the word or the character tokenizer: the data layer, and
train, generate and eval through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnlab.cli import main
from attnlab.data import stream
from attnlab.data.stream import WindowBatches, prepare_stream
from attnlab.data.tokenizer import CharTokenizer, MyTokenizer
from attnlab.vocab import SPECIALS, UNK_ID

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog {i % 7}.\n" for i in range(300))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_char_stream_is_the_text_split_by_position(text_file):
    s = prepare_stream(text_file, tokenizer="char", val_fraction=0.1, lowercase=False)
    assert isinstance(s.tokenizer, CharTokenizer)
    assert s.tokenizer.vocab == list(SPECIALS) + sorted(set(TEXT))  # the alphabet, in code-point order
    ids = np.concatenate([s.train, s.val])
    assert len(s.train) == int(len(TEXT) * 0.9) and s.tokenizer.decode(ids.tolist()) == TEXT
    assert s.train.dtype == np.uint16  # a compact NumPy array, never a list of Python ints


def test_word_stream_builds_its_vocabulary_from_the_training_part(text_file):
    s = prepare_stream(text_file, tokenizer="word", val_fraction=0.1, min_freq=1, lowercase=True)
    assert type(s.tokenizer) is MyTokenizer
    assert "fox" in s.tokenizer.vocab and "line" in s.tokenizer.vocab and "Line" not in s.tokenizer.vocab
    words = s.tokenizer.tokenize(TEXT)
    assert len(s.train) + len(s.val) == len(words)
    # a saved tokenizer is used as it is: the same ids, never a rebuilt vocabulary
    again = prepare_stream(text_file, tokenizer="word", tok=s.tokenizer)
    assert np.array_equal(again.val, s.val)


def test_word_stream_splits_by_words_and_never_inside_a_word(tmp_path, monkeypatch):
    path = tmp_path / "w.txt"
    path.write_text("alpha " * 80 + "beta " * 10 + "omega " * 10, encoding="utf-8")  # 100 words; the last 10 validate
    monkeypatch.setattr(stream, "CHUNK", 7)  # chunks end inside words
    s = prepare_stream(path, tokenizer="word", val_fraction=0.1, min_freq=1)
    alpha, beta = s.tokenizer.index["alpha"], s.tokenizer.index["beta"]
    assert "omega" not in s.tokenizer.vocab  # the vocabulary is the first 90 % of the words'
    assert s.train.tolist() == [alpha] * 80 + [beta] * 10 and s.val.tolist() == [UNK_ID] * 10


def test_big_files_are_memory_mapped_and_equal_the_in_memory_ids(text_file, tmp_path, monkeypatch):
    small = prepare_stream(text_file, tokenizer="char", lowercase=False)
    monkeypatch.setattr(stream, "MEMMAP_ABOVE", 100)  # "big" = above 100 bytes, for the test
    monkeypatch.setattr(stream, "CHUNK", 1000)  # read in several chunks
    big = prepare_stream(text_file, tokenizer="char", lowercase=False, cache_dir=tmp_path / "cache")
    assert isinstance(big.train.base, np.memmap) or isinstance(big.train, np.memmap)
    assert np.array_equal(np.asarray(big.train), small.train) and np.array_equal(np.asarray(big.val), small.val)


def test_unknown_characters_become_unk():
    tok = CharTokenizer.from_text("abc")
    assert tok.encode_stream("abxc").tolist() == [3, 4, UNK_ID, 5]


def test_window_batches_are_next_token_pairs_and_deterministic():
    ids = np.arange(1000, dtype=np.uint16)  # token i is i: the windows are easy to check
    train = WindowBatches(ids, context=16, batch_size=4)
    batch = next(iter(train.iter_epoch(0, seed=0)))
    assert batch["input_ids"].shape == (4, 16)
    assert torch.equal(batch["labels"], batch["input_ids"] + 1)  # each label is the next token
    assert torch.equal((batch["input_ids"][:, 1:] - batch["input_ids"][:, :-1]), torch.ones(4, 15, dtype=torch.long))
    again = next(iter(train.iter_epoch(0, seed=0)))
    other = next(iter(train.iter_epoch(1, seed=0)))
    assert torch.equal(batch["input_ids"], again["input_ids"])
    assert not torch.equal(batch["input_ids"], other["input_ids"])
    val = WindowBatches(ids, context=16, batch_size=4, shuffle=False)
    seen = torch.cat([b["input_ids"] for b in val.iter_epoch(0, 0)]).flatten()
    assert seen.tolist() == list(range(len(seen))) and len(seen) == (999 // 16) * 16  # every token once, in order
    # DDP: each process takes its rows of every batch
    both = [torch.cat([r0["input_ids"], r1["input_ids"]]) for r0, r1 in
            zip(train.iter_epoch(0, 0, rank=0, world=2), train.iter_epoch(0, 0, rank=1, world=2))]
    assert all(torch.equal(x, y["input_ids"]) for x, y in zip(both, train.iter_epoch(0, 0)))


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_stream_mode_through_the_cli(tokenizer, text_file, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "gpt", "--preset", "tiny", "--data", str(text_file), "--set", "data.mode=stream",
                 "--set", f"data.tokenizer={tokenizer}", "--set", "data.min_freq=1", "--set", "model.context=16",
                 "--out", str(run), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    trained = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "checkpoints" / (run / "checkpoints" / "best").read_text().strip() / "meta.json")
                      .read_text())
    assert meta["tokenizer"]["type"] == tokenizer and meta["config"]["data"]["mode"] == "stream"

    assert main(["eval", "gpt", "--checkpoint", str(run), "--data", str(text_file), "--out", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-6)

    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the quick", "--num-tokens", "12"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("the quick")
    generated = printed[len("the quick"):-1]  # print() ends the text with one new line
    assert len(generated.split() if tokenizer == "word" else generated) == 12


def test_character_level_training_needs_no_nltk(tmp_path, text_file):
    # NLTK serves the word tokenizer only: a character-level run (char-cpu, char-gpu) must start and
    # train where it is not installed (the GPU machines of tools/device_checks.py lack it).

    blocker = tmp_path / "blocked" / "nltk"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("nltk is blocked for this test")\n')
    code = "import sys; from attnlab.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["train", "gpt", "--preset", "char-cpu", "--data", str(text_file), "--out", str(tmp_path / "run"),
            "--set", "train.max_steps=2", "--set", "model.num_layers=1", "--set", "model.dim=32",
            "--set", "train.eval_every=2", "--set", "sample.num_tokens=3"]
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2
    probe = subprocess.run([sys.executable, "-c", "import nltk"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker really hides NLTK
