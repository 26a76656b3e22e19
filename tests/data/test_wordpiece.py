"""BERT's WordPiece (attnlab.data.wordpiece): ids, token types and pieces equal to
``transformers.BertTokenizerFast`` built from the same files, on the whole of Tiny Shakespeare and
1,000 IMDB reviews (skipped when /work/data/aclImdb is absent), with vocabularies trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from attnlab.data.wordpiece import WordPiece  # noqa: E402
from attnlab.errors import AttnlabError  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "src" / "attnlab" / "data" / "tinyshakespeare.txt"
IMDB = Path("/work/data/aclImdb/train")


def shakespeare_lines() -> list[str]:
    return [line for line in SHAKESPEARE.read_text(encoding="utf-8").splitlines() if line.strip()]


def imdb_reviews(n: int = 1000) -> list[str]:
    files = sorted((IMDB / "pos").glob("*.txt"))[: n // 2] + sorted((IMDB / "neg").glob("*.txt"))[: n // 2]
    return [f.read_text(encoding="utf-8") for f in files]


@pytest.fixture(scope="module", params=["vocab.txt uncased", "vocab.txt cased", "tokenizer.json",
                                        "tokenizer.json without post-processor"])
def model_dir(request, tmp_path_factory):
    """A WordPiece vocabulary trained on Tiny Shakespeare, saved as a model directory ships it."""
    lower = request.param != "vocab.txt cased"
    wp = tokenizers.BertWordPieceTokenizer(lowercase=lower)
    wp.train_from_iterator(shakespeare_lines(), vocab_size=2000, min_frequency=2, show_progress=False)
    d = tmp_path_factory.mktemp("wordpiece")
    if request.param == "tokenizer.json":  # as the hub ships it: with BERT's template
        vocab = wp.get_vocab()
        wp.post_processor = tokenizers.processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        wp.save(str(d / "tokenizer.json"))
    elif request.param.startswith("tokenizer.json"):  # trained and saved bare: transformers adds BERT's template
        wp.save(str(d / "tokenizer.json"))
    else:
        wp.save_model(str(d))  # vocab.txt
        (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    return d


def assert_same(ours: WordPiece, ref, texts: list[str], pairs: list[str] | None = None, max_len: int | None = None):
    kwargs = {"truncation": "longest_first", "max_length": max_len} if max_len else {}
    want = ref(texts, pairs, **kwargs) if pairs is not None else ref(texts, **kwargs)
    got = ours.encode_batch(texts, pairs, max_len=max_len)
    for i, (g, ids, types) in enumerate(zip(got, want["input_ids"], want["token_type_ids"], strict=True)):
        assert g.ids == ids, f"text {i}: {texts[i][:80]!r}"
        assert g.type_ids == types, f"text {i}: token types"


def test_ids_equal_bert_tokenizer_fast_on_tiny_shakespeare(model_dir):
    ours, ref = WordPiece.from_dir(model_dir), transformers.BertTokenizerFast.from_pretrained(model_dir)
    lines = shakespeare_lines()
    assert len(lines) > 30_000
    assert_same(ours, ref, lines)
    assert_same(ours, ref, lines[:2000:2], lines[1:2000:2])  # sentence pairs: [CLS] A [SEP] B [SEP], types 0 / 1
    assert_same(ours, ref, lines[:2000:2], lines[1:2000:2], max_len=12)  # cut, longest text first
    assert ours.encode("First Citizen:").tokens[0] == "[CLS]"


def test_ids_equal_bert_tokenizer_fast_on_imdb(model_dir):
    if not IMDB.is_dir():
        pytest.skip(f"{IMDB} is absent (python ../shared/data/prepare.py /work/data unpacks IMDB)")
    ours, ref = WordPiece.from_dir(model_dir), transformers.BertTokenizerFast.from_pretrained(model_dir)
    reviews = imdb_reviews()
    assert len(reviews) == 1000
    assert_same(ours, ref, reviews)
    assert_same(ours, ref, reviews, max_len=128)


def test_tensors_pad_and_round_trip_through_json(model_dir):
    ours = WordPiece.from_dir(model_dir)
    again = WordPiece.from_json(ours.to_json())
    t = again.tensors(["to be or not to be", "o"], 16, ["that is the question", "romeo"])
    first = ours.encode("to be or not to be", "that is the question")
    n = len(first.ids)
    assert t["lengths"].tolist() == [n, len(ours.encode("o", "romeo").ids)]
    assert t["ids"][0, :n].tolist() == first.ids and t["ids"][0, n:].eq(ours.pad_id).all()
    assert t["token_type_ids"][0, :n].tolist() == first.type_ids


def test_a_directory_without_a_tokenizer_is_one_error(tmp_path):
    with pytest.raises(AttnlabError, match="holds no tokenizer"):
        WordPiece.from_dir(tmp_path)
