"""The byte-level BPE tokenizer (Hugging Face tokenizers): fitting, ids, JSON round trip, readable pieces."""

from __future__ import annotations

import pytest

pytest.importorskip("tokenizers")

from attnlab.data.bpe import SPACE, BPETokenizer, fit_bpe  # noqa: E402
from attnlab.errors import AttnlabError  # noqa: E402

TEXTS = ["Je suis très fatigué.", "Il est fatigué.", "Nous sommes fatigués !", "Où est la gare ?",
         "I am very tired.", "He is tired.", "Where is the station?"] * 20
SPECIALS = ("<pad>", "<s>", "</s>")


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return BPETokenizer.fit(TEXTS, 400, SPECIALS)


def test_specials_come_first_and_the_vocabulary_is_bounded(tok):
    assert [tok.token_id(s) for s in SPECIALS] == [0, 1, 2]
    assert 256 + len(SPECIALS) < tok.vocab_size <= 400
    with pytest.raises(KeyError, match="'<unk>' is not in the vocabulary"):
        tok.token_id("<unk>")


def test_encode_decode_round_trip_any_text(tok):
    for text in ["Je suis très fatigué.", "Ça coûte 5 € — déjà vu ?", "naïve 漢字 emoji 🙂"]:  # unseen bytes too
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode_batch(["Il est fatigué.", "He is tired."]) == [tok.encode("Il est fatigué."),
                                                                    tok.encode("He is tired.")]


def test_frequent_words_are_single_pieces_shown_with_a_visible_space(tok):
    assert tok.pieces("Il est fatigué.") == [f"{SPACE}Il", f"{SPACE}est", f"{SPACE}fatigué", "."]
    assert tok.piece_text(0) == "<pad>"
    text = "Nous sommes très fatigués !"
    assert "".join(tok.pieces(text)).replace(SPACE, " ").strip() == text


def test_json_round_trip_gives_the_same_ids(tok):
    again = BPETokenizer.from_json(tok.to_json())
    assert again.vocab_size == tok.vocab_size
    for text in TEXTS[:7]:
        assert again.encode(text) == tok.encode(text)


def test_the_same_texts_fit_the_same_tokenizer():
    assert fit_bpe(TEXTS, 300, SPECIALS).to_str() == fit_bpe(TEXTS, 300, SPECIALS).to_str()


def test_a_vocabulary_below_the_byte_alphabet_is_refused():
    with pytest.raises(AttnlabError, match=r"needs at least 259 entries \(256 bytes and 3 special tokens\), got 100"):
        fit_bpe(TEXTS, 100, SPECIALS)
