"""attnlab.tokenize: offline nltk.word_tokenize, pinned on review sentences and checked against NLTK."""

from __future__ import annotations

import nltk
import pytest

from attnlab.data.tokenize import clean_review, punkt_parameters, reference_word_tokenize, sent_tokenize, word_tokenize

# Real review-style sentences: abbreviations, quotes, ellipses, contractions, URLs, HTML breaks.
# The expected tokens are NLTK's (checked against nltk.word_tokenize below).
CORPUS = [
    ("I saw this film with Mr. Smith and Dr. Jones in the U.S. last year. It was awful.",
     ["I", "saw", "this", "film", "with", "Mr.", "Smith", "and", "Dr.", "Jones", "in", "the", "U.S.",
      "last", "year", ".", "It", "was", "awful", "."]),
    ('The critic wrote "a masterpiece" -- I\'d disagree... it\'s merely OK.',
     ["The", "critic", "wrote", "``", "a", "masterpiece", "''", "--", "I", "'d", "disagree", "...",
      "it", "'s", "merely", "OK", "."]),
    ("Don't waste your time; I can't believe they didn't cut 20 minutes. Rating: 3/10!",
     ["Do", "n't", "waste", "your", "time", ";", "I", "ca", "n't", "believe", "they", "did", "n't",
      "cut", "20", "minutes", ".", "Rating", ":", "3/10", "!"]),
    ("Check http://www.imdb.com/title/tt0111161/ for the cast (e.g. Tim Robbins).",
     ["Check", "http", ":", "//www.imdb.com/title/tt0111161/", "for", "the", "cast", "(", "e.g", ".",
      "Tim", "Robbins", ")", "."]),
    ("Well... I guess it's 'fine'. The ending?! Terrible.",
     ["Well", "...", "I", "guess", "it", "'s", "'", "fine", "'", ".", "The", "ending", "?", "!",
      "Terrible", "."]),
    ('She said, "I\'m gonna watch it again." And she did.',
     ["She", "said", ",", "``", "I", "'m", "gon", "na", "watch", "it", "again", ".", "''", "And",
      "she", "did", "."]),
    ("Released in Jan. 1999 by Warner Bros. Inc., it cost $12.5 million.",
     ["Released", "in", "Jan.", "1999", "by", "Warner", "Bros.", "Inc.", ",", "it", "cost", "$",
      "12.5", "million", "."]),
]


@pytest.mark.parametrize("text,expected", CORPUS)
def test_pinned_tokens(text, expected):
    assert word_tokenize(text) == expected
    # the sentiment pipeline: the same tokens, lower-cased
    assert word_tokenize(clean_review(text)) == [t.lower() for t in expected]


def test_sentence_splits():
    assert sent_tokenize("Mr. Smith went to Washington. He was tired. The U.S. Army is big.") == [
        "Mr. Smith went to Washington.", "He was tired.", "The U.S. Army is big."]
    assert sent_tokenize("Well... I guess it's 'fine'. The ending?! Terrible.") == [
        "Well...", "I guess it's 'fine'.", "The ending?!", "Terrible."]


def test_clean_review_removes_html_breaks_and_lowercases():
    text = "This movie is GREAT.<br /><br />The acting<br/>is<BR>superb!"
    assert clean_review(text) == "this movie is great.  the acting is superb!"
    assert word_tokenize(clean_review(text)) == [
        "this", "movie", "is", "great", ".", "the", "acting", "is", "superb", "!"]


def test_empty_and_whitespace():
    assert word_tokenize("") == []
    assert word_tokenize("   \n ") == []


def test_fast_path_equals_nltk_classes_on_awkward_text():
    """The re-compiled fast path gives exactly what NLTK's own (redos) classes give."""
    texts = [t for t, _ in CORPUS] + [
        "«Quoted» “curly” ‘single’ „low“ `tick` -- and em—dash, en–dash; 50% & #1 @home *wow*",
        "Cannot believe... gimme a break, lemme go. 'Tis true, 'twas fun. Whaddya want?",
        "A (bracketed) [section] {with} <angles>; ok:fine,then 1,000,000.",
        "He said ''hello'' and left.. Then... nothing.... The end",
        "I.E. the U.K. vs. the U.S.S.R. in No. 5 -- p.m. or a.m.?",
        "Tabs\tand\nnew lines\r\nand  double  spaces.  Done",
    ]
    for text in texts:
        assert word_tokenize(text) == reference_word_tokenize(text), text
        assert word_tokenize(text.lower()) == reference_word_tokenize(text.lower()), text


def _write_punkt_tab(root):
    """Write the parameters as NLTK's punkt_tab/english files (the format nltk.download installs)."""
    params = punkt_parameters()
    d = root / "tokenizers" / "punkt_tab" / "english"
    d.mkdir(parents=True)
    (d / "abbrev_types.txt").write_text("\n".join(sorted(params.abbrev_types)), encoding="utf-8")
    (d / "sent_starters.txt").write_text("\n".join(sorted(params.sent_starters)), encoding="utf-8")
    (d / "collocations.tab").write_text(
        "\n".join(f"{a}\t{b}" for a, b in sorted(params.collocations)), encoding="utf-8")
    (d / "ortho_context.tab").write_text(
        "\n".join(f"{k}\t{v}" for k, v in sorted(params.ortho_context.items())), encoding="utf-8")


def test_matches_real_nltk_word_tokenize(tmp_path, monkeypatch):
    """nltk.word_tokenize itself, given the same model as an installed punkt_tab package."""
    _write_punkt_tab(tmp_path)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + list(nltk.data.path))
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    try:
        for text, expected in CORPUS:
            assert nltk.word_tokenize(text) == expected
            assert nltk.word_tokenize(text) == word_tokenize(text)
            low = clean_review(text)
            assert nltk.word_tokenize(low) == word_tokenize(low)
    finally:
        nltk.tokenize._get_punkt_tokenizer.cache_clear()


def test_model_has_nltk_english_parameters():
    params = punkt_parameters()
    # NLTK's punkt_tab/english: 156 abbreviations, 39 sentence starters, 37 collocations.
    assert (len(params.abbrev_types), len(params.sent_starters), len(params.collocations)) == (156, 39, 37)
    assert {"mr", "dr", "u.s", "inc", "jan"} <= params.abbrev_types
    assert len(params.ortho_context) == 20366
