"""MyTokenizer: fixed special ids, vocabulary rules, encode/decode round trip, JSON round trip."""

import json

import pytest

from attnlab.data.tokenizer import MyTokenizer
from attnlab.errors import AttnlabError
from attnlab.vocab import PAD_ID, START_ID, UNK_ID

TEXTS = ["To be, or not to be.", "Be not afraid.", "To sleep, perchance to dream."]


def test_special_token_ids_are_fixed():
    tok = MyTokenizer.build(TEXTS)
    assert (PAD_ID, UNK_ID, START_ID) == (0, 1, 2)
    assert tok.vocab[:3] == ["<pad>", "<unk>", "<start>"]
    assert (tok.pad_id, tok.unk_id, tok.start_id) == (0, 1, 2)


def test_vocabulary_frequency_order_min_freq_and_max_size():
    tok = MyTokenizer.build(TEXTS)
    # "to" (4x) and "be" (3x) first, then ties alphabetically: "," (2x), "." (3x) ...
    counts = {"to": 4, "be": 3, ".": 3, ",": 2, "not": 2}
    assert tok.vocab[3:8] == sorted(counts, key=lambda w: (-counts[w], w))
    assert MyTokenizer.build(TEXTS, min_freq=2).vocab[3:] == tok.vocab[3:8]
    small = MyTokenizer.build(TEXTS, max_size=5)
    assert len(small) == 5 and small.vocab[3:] == ["to", "."]
    with pytest.raises(AttnlabError, match="max_size must exceed the 3 special tokens, got 3"):
        MyTokenizer.build(TEXTS, max_size=3)
    with pytest.raises(AttnlabError, match="min_freq must be >= 1, got 0"):
        MyTokenizer.build(TEXTS, min_freq=0)


def test_encode_prepends_start_and_maps_unknown_words_to_unk():
    tok = MyTokenizer.build(TEXTS)
    ids = tok.encode("To be, Hamlet!")
    assert ids[0] == START_ID
    assert ids[1:3] == [tok.index["to"], tok.index["be"]]
    assert ids[4] == UNK_ID  # "hamlet" was never seen
    assert tok.encode("") == [START_ID]


def test_decode_round_trip_joins_tokens_with_single_spaces():
    tok = MyTokenizer.build(TEXTS)
    s = "To be, or not to be."
    assert tok.decode(tok.encode(s)) == "to be , or not to be ."
    assert tok.decode(tok.encode(s)) == " ".join(tok.tokenize(s))
    assert tok.decode([START_ID, UNK_ID, PAD_ID], skip_special=False) == "<start> <unk> <pad>"
    assert tok.decode([START_ID, UNK_ID, PAD_ID]) == "<unk>"
    with pytest.raises(AttnlabError, match=f"token id {len(tok)} is outside the vocabulary of {len(tok)} tokens"):
        tok.decode([len(tok)])


def test_lowercase_is_an_option():
    cased = MyTokenizer.build(TEXTS, lowercase=False)
    assert "To" in cased.index and "to" in cased.index
    assert "To" not in MyTokenizer.build(TEXTS).index


def test_json_round_trip():
    tok = MyTokenizer.build(TEXTS, lowercase=False)
    back = MyTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert back.vocab == tok.vocab and back.lowercase is False
    assert back.encode("To be") == tok.encode("To be")
    with pytest.raises(AttnlabError, match="must start with the special tokens"):
        MyTokenizer.from_dict({"vocab": ["a", "b"]})
    with pytest.raises(AttnlabError, match="no valid tokenizer vocabulary"):
        MyTokenizer.from_dict({})
