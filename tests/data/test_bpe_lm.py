"""`attnlab train gpt --set data.tokenizer=bpe` end to end on a generated text: the BPE is fitted on
the training part only and kept in meta.json, resume is bit-exact without refitting, generate
decodes to text, the explorer's pieces are readable, a too-small vocabulary is one clear error."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

from attnlab.cli import main
from attnlab.data.bpe_lm import BPELMTokenizer
from attnlab.data.tokenizer import MyTokenizer
from attnlab.engine.checkpoint import read_meta
from attnlab.vocab import PAD_ID, SPECIALS, START_ID

pytest.importorskip("tokenizers")

WORDS = "the cat sat on mat and dog ran far away with a red ball under big tree".split()
RARE = "zyxquartzplover"  # only in the validation part (the text's last tenth)
TINY = ["--preset", "tiny", "--set", "data.tokenizer=bpe", "--set", "data.bpe_vocab_size=300", "--no-progress"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(300)]
    path = tmp_path_factory.mktemp("bpe") / "text.txt"
    path.write_text("\n".join(lines) + "\n" + f"{RARE} " * 40 + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe") / "run"
    assert main(["train", "gpt", *TINY, "--set", "data.mode=stream", "--set", "train.max_steps=8",
                 "--set", "train.eval_every=4", "--set", "train.keep_last=2", "--data", str(text_file),
                 "--out", str(out)]) == 0
    return out


def test_the_tokenizer_is_in_meta_and_fitted_on_the_training_part_only(run, text_file):
    meta = read_meta(run)
    assert meta["tokenizer"]["type"] == "bpe" and meta["config"]["data"]["bpe_vocab_size"] == 300
    tok = MyTokenizer.from_dict(meta["tokenizer"])
    assert isinstance(tok, BPELMTokenizer) and len(tok) == 300
    assert tok.vocab[: len(SPECIALS)] == list(SPECIALS) and (tok.pad_id, tok.start_id) == (PAD_ID, START_ID)
    assert len(tok.encode_stream(" cat")) == 1  # a training word: one piece
    assert len(tok.encode_stream(f" {RARE}")) > 3  # a validation-only word: never merged whole
    text = text_file.read_text(encoding="utf-8")
    assert tok.decode(tok.encode_stream(text)) == text  # byte-level: every text round-trips exactly
    assert tok.encode(" cat")[0] == START_ID  # a dialogue turn starts with <start>, a stream does not


def test_a_dialogue_run_fits_on_the_training_turns(text_file, tmp_path):
    from attnlab.data.shakespeare import split_dialogues

    assert main(["train", "gpt", *TINY, "--set", "train.max_steps=2", "--set", "data.val_fraction=0.5",
                 "--data", str(text_file), "--out", str(tmp_path / "d")]) == 0
    tok = MyTokenizer.from_dict(read_meta(tmp_path / "d")["tokenizer"])
    turns = [line.strip() for line in text_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, _ = split_dialogues(turns, val_fraction=0.5, seed=0)
    assert not any(RARE in t for t in train)  # (the split is seeded: the rare line validates)
    assert len(tok.encode_stream(f" {RARE}")) > 3 and len(tok.encode_stream(" cat")) == 1


def test_resume_is_bit_exact_and_does_not_refit(run, text_file, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    again = tmp_path / "again"
    shutil.copytree(run, again)
    monkeypatch.setattr(BPELMTokenizer, "fit", lambda *a, **k: pytest.fail("refitted on resume"))
    assert main(["train", "gpt", "--out", str(again), "--resume-from", str(again / "checkpoints" / "step-00000004"),
                 "--data", str(text_file), "--no-progress"]) == 0
    a = load_file(run / "checkpoints" / "step-00000008" / "model.safetensors")
    b = load_file(again / "checkpoints" / "step-00000008" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (run, again))
    assert ma["val_loss"] == mb["val_loss"] and ma["train_loss"] == mb["train_loss"]


def test_generate_decodes_to_text(run, capsys, monkeypatch):
    monkeypatch.setattr(BPELMTokenizer, "fit", lambda *a, **k: pytest.fail("refitted on generate"))
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the cat", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the cat")  # the prompt's own text, then the sampled continuation
    assert "Ġ" not in out and "<start>" not in out


def test_the_readers_pieces_are_readable(run):
    from attnlab.tasks.lm import LMReader

    reader = LMReader(read_meta(run), "gpt")
    enc = reader.text("the cat sat", limit=32)
    assert "".join(enc.tokens).replace("␣", " ") == "the cat sat"
    assert enc.tokens[-2:] == ["␣cat", "␣sat"]  # training words, one piece each, the space shown
    assert [reader.token(int(i)) for i in enc.inputs[0][0]] == enc.tokens


def test_a_too_small_vocabulary_is_one_clear_error(text_file, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["train", "gpt", *TINY, "--set", "data.bpe_vocab_size=1", "--data", str(text_file),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config key 'data.bpe_vocab_size' must be >= 259 and <= 1,048,576, got 1"]
    assert not out.exists()
