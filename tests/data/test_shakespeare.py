"""Tiny Shakespeare data: turns, seeded split, load errors, windows, padding collate, batches."""

import hashlib
from pathlib import Path

import pytest
import torch

from attnlab.data import shakespeare
from attnlab.data.dialogue import DialogueDataset, collate, lm_batches, prepare_lm_data, windows
from attnlab.data.shakespeare import all_dialogues, load_text, split_dialogues
from attnlab.errors import AttnlabError
from attnlab.vocab import PAD_ID, START_ID, UNK_ID

PLAY = "First Citizen:\nBefore we proceed.\n\nAll:\nSpeak, speak.\n \t\nFirst Citizen:\nYou are all\nresolved.\n\n\n"


def test_all_dialogues_splits_on_blank_lines():
    assert all_dialogues(PLAY) == [
        "First Citizen:\nBefore we proceed.",
        "All:\nSpeak, speak.",
        "First Citizen:\nYou are all\nresolved.",
    ]
    assert all_dialogues(PLAY.replace("\n", "\r\n")) == all_dialogues(PLAY)
    assert all_dialogues("\n\n  \n") == []


def test_embedded_text_is_tiny_shakespeare():
    text = load_text(None)
    assert hashlib.md5(text.encode("utf-8")).hexdigest() == shakespeare.MD5
    turns = all_dialogues(text)
    assert len(turns) == 7222
    assert turns[0] == "First Citizen:\nBefore we proceed any further, hear me speak."


def test_split_is_seeded_disjoint_and_complete():
    turns = [f"Speaker {i}:\nline {i}" for i in range(100)]
    train, val = split_dialogues(turns, val_fraction=0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert sorted(train + val) == sorted(turns)
    assert split_dialogues(turns, val_fraction=0.1, seed=3) == (train, val)
    assert split_dialogues(turns, val_fraction=0.1, seed=4) != (train, val)
    assert [len(p) for p in split_dialogues(turns[:2], val_fraction=0.1)] == [1, 1]
    with pytest.raises(AttnlabError, match="at least 2"):
        split_dialogues(turns[:1])
    with pytest.raises(AttnlabError, match="^val_fraction must be between 0 and 1, got 1.5$"):
        split_dialogues(turns, val_fraction=1.5)


def test_load_text_gives_clear_errors(tmp_path: Path):
    with pytest.raises(AttnlabError, match="does not exist"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(AttnlabError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("Ægir spoke\n".encode("latin-1"))
    with pytest.raises(AttnlabError, match="not UTF-8"):
        load_text(tmp_path / "latin1.txt")
    with pytest.raises(AttnlabError, match="not a file"):
        load_text(tmp_path)
    (tmp_path / "ok.txt").write_text(PLAY)
    assert load_text(tmp_path / "ok.txt") == PLAY


def _no_network(*args, **kwargs):
    raise AssertionError("fetch shakespeare must not use the network")


def test_fetch_copies_the_bundled_text_without_the_network(monkeypatch, tmp_path: Path):
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    monkeypatch.setattr("attnlab.data.download.fetch_url", _no_network)
    out = shakespeare.fetch(tmp_path / "data")
    assert out == tmp_path / "data" / "tinyshakespeare" / "input.txt"
    assert hashlib.md5(out.read_bytes()).hexdigest() == "6fb458f1232090904fb40fe944165e91"
    assert out.read_text(encoding="utf-8") == load_text(None)
    assert [p.name for p in out.parent.iterdir()] == ["input.txt"]  # no scratch file left
    inode = out.stat().st_ino
    assert shakespeare.fetch(tmp_path / "data") == out and out.stat().st_ino == inode  # a good copy is kept
    out.write_text("damaged")
    assert hashlib.md5(shakespeare.fetch(tmp_path / "data").read_bytes()).hexdigest() == shakespeare.MD5


def test_fetch_refuses_a_damaged_bundled_copy_and_leaves_nothing(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(shakespeare, "_bundled_bytes", lambda: b"First Citizen:\nnot the real text\n")
    with pytest.raises(AttnlabError, match=r"copy of Tiny Shakespeare installed with attnlab is damaged "
                                           r"\(md5 [0-9a-f]{32}, expected 6fb458f1232090904fb40fe944165e91\); "
                                           r"reinstall attnlab"):
        shakespeare.fetch(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


def test_windows_make_every_token_a_target_exactly_once():
    ids = list(range(23))
    ws = windows(ids, 8)
    assert all(2 <= len(w) <= 8 for w in ws)
    targets = [t for w in ws for t in w[1:]]
    assert targets == ids[1:]
    assert windows(ids[:8], 8) == [ids[:8]]


def test_collate_right_pads_and_masks():
    batch = collate([[START_ID, 5, 6], [START_ID, 7]])
    assert batch["input_ids"].tolist() == [[START_ID, 5, 6], [START_ID, 7, PAD_ID]]
    assert batch["input_mask"].tolist() == [[True, True, True], [True, True, False]]


def test_length_bucket_batches_are_deterministic_and_cover_everything():
    ds = DialogueDataset([[START_ID] + [5] * n for n in range(1, 200)], context=64)
    assert len(ds) == sum(len(windows([0] * (n + 1), 64)) for n in range(1, 200))
    b = lm_batches(ds, 16)

    def epoch(e, seed=0, rank=0, world=1):
        return [x["input_ids"].tolist() for x in b.iter_epoch(e, seed, rank, world)]

    assert epoch(0) == epoch(0) and epoch(0) != epoch(1)
    assert len(epoch(0)) == len(b)
    real = sum(int(x["input_mask"].sum()) for x in b.iter_epoch(0, 0))
    assert real == sum(len(x) for x in ds.examples)
    # DDP: each process takes its slice of every global batch
    both = [r0 + r1 for r0, r1 in zip(epoch(0, rank=0, world=2), epoch(0, rank=1, world=2))]
    assert sorted(map(len, both)) == sorted(len(x) for x in epoch(0))
    # evaluation order: sorted by length, little padding
    padded = [x["input_ids"].numel() for x in lm_batches(ds, 16, shuffle=False).iter_epoch(0, 0)]
    assert sum(padded) < 1.1 * real


def test_prepare_lm_data_builds_the_vocabulary_from_training_turns_only():
    turns = [f"Speaker:\nword{i} common common" for i in range(20)]
    data = prepare_lm_data("\n\n".join(turns), context=16, val_fraction=0.25, split_seed=0)
    assert len(data.train) == 15 and len(data.val) == 5
    vocab = set(data.tokenizer.vocab)
    assert sum(f"word{i}" in vocab for i in range(20)) == 15  # only the training turns' words
    assert all(x[3] == UNK_ID for x in data.val.examples)  # "<start> speaker : <unk> common common"
    assert all(x[0] == START_ID for x in data.train.examples + data.val.examples)
    assert torch.tensor([len(x) for x in data.val.examples]).min() >= 2


def test_text_without_blank_lines_uses_one_example_per_line():
    data = prepare_lm_data("line one\nline two\nline three\nline four\n", context=8, val_fraction=0.25)
    assert len(data.train) == 3 and len(data.val) == 1
    with pytest.raises(AttnlabError, match="at least 2"):
        prepare_lm_data("just one line", context=8)
