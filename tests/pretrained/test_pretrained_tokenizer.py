"""GPT-2's byte-level BPE read from a model directory (attnlab.data.pretrained_tokenizer): the ids
equal transformers' tokenizer built from the same files on the whole of Tiny Shakespeare."""

from __future__ import annotations

import pytest

from attnlab.data.pretrained_tokenizer import PretrainedTokenizer, readable
from attnlab.data.tokenizer import MyTokenizer, prompt_ids


@pytest.fixture(scope="module")
def text(hf) -> str:
    return hf.text.read_text(encoding="utf-8")


@pytest.mark.parametrize("files", ["vocab.json + merges.txt", "tokenizer.json"])
def test_ids_equal_transformers_on_all_of_tiny_shakespeare(tmp_path, bpe_dir, hf, text, files):
    names = ["vocab.json", "merges.txt"] if files.startswith("vocab") else ["tokenizer.json"]
    for name in names:
        (tmp_path / name).write_bytes((bpe_dir / name).read_bytes())
    ours = PretrainedTokenizer.from_directory(tmp_path)
    ref = hf.transformers.GPT2TokenizerFast.from_pretrained(str(tmp_path))
    ids = ours.encode(text)
    assert len(ids) > 500_000  # a 400-id BPE: about 1.8 characters per token
    assert ids == ref(text)["input_ids"]
    assert ours.decode(ids) == text == ref.decode(ids)
    odd = "naïve café <|endoftext|> 😀\t\r\n  spaced"  # multi-byte characters, the special token, odd spaces
    assert ours.encode(odd) == ref(odd)["input_ids"]


def test_saved_in_meta_and_back_is_the_same_tokenizer(bpe_dir, text):
    tok = PretrainedTokenizer.from_directory(bpe_dir)
    again = MyTokenizer.from_dict(tok.to_dict())  # as a checkpoint's meta.json holds it
    assert isinstance(again, PretrainedTokenizer)
    sample = text[:5_000]
    assert again.encode(sample) == tok.encode(sample)
    assert list(again.encode_stream(tok.tokenize(sample))) == tok.encode(sample)  # raw pieces map back exactly
    assert prompt_ids(again, "ROMEO:", True) == tok.encode("ROMEO:")  # a stream: no start token
    assert again.never_generated == ()


def test_readable_pieces_show_spaces_and_line_breaks(bpe_dir):
    tok = PretrainedTokenizer.from_directory(bpe_dir)
    ids = tok.encode("ROMEO:\n the")
    assert [tok.vocab[i] for i in ids][-2:] in (["↵", "␣the"], ["↵␣", "the"])
    assert tok.tokenize(" the")[0].startswith("Ġ")  # the raw piece keeps GPT-2's marker
    assert readable(" a\tb\r\n") == "␣a→b␍↵"
    parts = [tok.vocab[i] for i in tok.encode(" 😀")]  # a 4-byte character the 400-id BPE splits into bytes
    assert "".join(parts) == "␣\\xf0\\x9f\\x98\\x80" and "\ufffd" not in "".join(parts)


def test_a_directory_without_tokenizer_files_is_one_clear_error(tmp_path):
    with pytest.raises(Exception, match=r"has no tokenizer files \(tokenizer\.json or vocab\.json \+ merges\.txt\)"):
        PretrainedTokenizer.from_directory(tmp_path)
