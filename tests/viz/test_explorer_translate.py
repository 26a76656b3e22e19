"""The explorer on a translation run (issue 22) and on pretrained models' inputs (issue 21): a translation
page's cross-attention, encoder and decoder self-attention are the model's own and each cross-attention row
sums to 1 over the real source pieces; its translation is `attnlab translate`'s; a BERT sentence pair's
tokens, token types and attention are transformers'; byte-level pieces are shown readable.

The browser-side checks (views, filters, steps drawn with no console error) are in test_explorer_browser.py.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

import attnlab
from attnlab.cli import main
from attnlab.errors import AttnlabError
from attnlab.models.decoding_seq2seq import beam_search, greedy_decode, strip
from attnlab.viz.explorer import Explorer, Request, unpack
from attnlab.viz.explorer_page import render

QUANT_TOL = 0.5 / 65535 + 1e-7  # the page carries round(w * 65535)
SENTENCE = "I am cold."


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    assert match, "no data in the page"
    return json.loads(match.group(1))


def decoded(ex: Explorer, text: str, beam: int = 1) -> tuple[torch.Tensor, list[int]]:
    """The source ids (1, S) and the pieces chosen (with </s> when it came), decoded here on their own."""
    r = ex.reader
    src = torch.tensor([r.tok.source.encode(text)[: r.max_len]])
    kw = dict(bos=r.bos, eos=r.eos, pad=r.pad, max_len=r.max_len + 1)
    with torch.no_grad():
        found = greedy_decode(ex.model, src, **kw) if beam == 1 else beam_search(
            ex.model, src, beam=beam, length_penalty=r.decode.length_penalty, **kw)
    row = found.tokens[0].tolist()
    out = strip(row, eos=r.eos, pad=r.pad)
    return src, out + ([r.eos] if len(out) < len(row) and row[len(out)] == r.eos else [])


# ---------------------------------------------------------------------- translation: the weights are the model's
def test_cross_attention_on_the_page_is_the_models_and_rows_sum_to_one_over_the_real_source(translate_runs):
    ex = Explorer.load(translate_runs["transformer"])
    data = ex.translation(SENTENCE)
    src, chosen = decoded(ex, SENTENCE)
    tgt = torch.tensor([[ex.reader.bos, *chosen[:-1]]])  # step i read <s> and the pieces chosen before it
    with torch.no_grad():
        att = ex.model.attend(src, tgt)
    S, T = src.size(1), tgt.size(1)
    assert data["tokens"] == [ex.reader.token(i) for i in chosen] and len(chosen) == T
    assert data["keys"] == [ex.reader.source_token(i) for i in src[0].tolist()]
    page = unpack(data["attention"])  # (L, H, T, S): every decoder layer's cross-attention
    model = torch.stack([a[0] for a in att.attentions])
    assert page.shape == model.shape == (2, 2, T, S)
    torch.testing.assert_close(page, model, atol=QUANT_TOL, rtol=0)
    torch.testing.assert_close(page, unpack(data["views"]["cross"]["attention"]), atol=0, rtol=0)
    torch.testing.assert_close(page.sum(-1), torch.ones(2, 2, T), atol=S * QUANT_TOL, rtol=0)
    # The same sentence padded in a batch beside a longer one: its rows put exactly 0 on the padding, sum to 1
    # over its real source pieces, and are the page's weights.
    long = ex.reader.tok.source.encode("they are happy here and we are late, you are tired.")
    batch = torch.full((2, max(S, len(long))), ex.reader.pad)
    batch[0, :S], batch[1, : len(long)] = src[0], torch.tensor(long)
    assert batch.size(1) > S, "the other sentence is longer: the first row is padded"
    with torch.no_grad():
        padded = ex.model.attend(batch, tgt.expand(2, -1))
    rows = torch.stack([a[0] for a in padded.attentions])  # (L, H, T, S_batch)
    assert torch.equal(rows[..., S:], torch.zeros_like(rows[..., S:]))
    torch.testing.assert_close(rows[..., :S].sum(-1), torch.ones(2, 2, T), atol=1e-6, rtol=0)
    torch.testing.assert_close(page, rows[..., :S], atol=QUANT_TOL + 1e-6, rtol=0)


def test_self_attention_views_and_steps_are_the_models(translate_runs):
    ex = Explorer.load(translate_runs["transformer"])
    data = ex.translation(SENTENCE, show_top=3)
    src, chosen = decoded(ex, SENTENCE)
    tgt = torch.tensor([[ex.reader.bos, *chosen[:-1]]])
    with torch.no_grad():
        att = ex.model.attend(src, tgt)
    enc, dec = data["views"]["encoder"], data["views"]["decoder"]
    torch.testing.assert_close(unpack(enc["attention"]), torch.stack([a[0] for a in att.extra["encoder"]]),
                               atol=QUANT_TOL, rtol=0)
    decoder = unpack(dec["attention"])
    torch.testing.assert_close(decoder, torch.stack([a[0] for a in att.extra["decoder"]]), atol=QUANT_TOL, rtol=0)
    T = tgt.size(1)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert dec["causal"] and torch.equal(decoder[..., future], torch.zeros_like(decoder[..., future]))
    assert enc["tokens"] == enc["keys"] == data["keys"]
    assert dec["tokens"] == dec["keys"] == [ex.reader.token(i) for i in tgt[0].tolist()]
    assert dec["tokens"][0] == "<s>"
    # each step: the chosen piece, its probability under the model, and (greedy) the most likely piece
    probs = torch.softmax(att.output[0].float(), -1)
    steps = data["translation"]["steps"]
    assert [s["token"] for s in steps] == data["tokens"]
    for i, (step, piece) in enumerate(zip(steps, chosen)):
        assert step["query"] == i and step["probability"] == pytest.approx(float(probs[i, piece]), abs=1e-6)
        assert len(step["top"]) == 3 and step["top"][0][0] == step["token"]
        assert step["top"][0][1] == pytest.approx(float(probs[i].max()), abs=1e-6)


@pytest.mark.parametrize("beam", [1, 2])
def test_the_page_translates_as_attnlab_translate(translate_runs, capsys, beam):
    run = translate_runs["transformer"]
    assert main(["translate", "--checkpoint", str(run), "--beam", str(beam), SENTENCE]) == 0
    expected = capsys.readouterr().out.strip()
    data = Explorer.load(run).answer(Request(text=SENTENCE, beam=beam))
    assert data is not None and data["translation"]["text"] == expected
    ex = Explorer.load(run)
    _, chosen = decoded(ex, SENTENCE, beam)
    assert data["tokens"] == [ex.reader.token(i) for i in chosen]
    how = "greedy decoding" if beam == 1 else "beam search (width 2, length penalty 0.6)"
    assert data["translation"]["how"] == how


def test_the_rnn_shows_its_one_attention(translate_runs):
    ex = Explorer.load(translate_runs["rnn"])
    data = ex.translation(SENTENCE)
    src, chosen = decoded(ex, SENTENCE)
    with torch.no_grad():
        att = ex.model.attend(src, torch.tensor([[ex.reader.bos, *chosen[:-1]]]))
    assert list(data["views"]) == ["cross"] and (ex.num_layers, ex.num_heads, ex.encoder_layers) == (1, 1, 0)
    page = unpack(data["attention"])
    torch.testing.assert_close(page, att.attentions[0][0][None], atol=QUANT_TOL, rtol=0)
    torch.testing.assert_close(page.sum(-1), torch.ones(page.shape[:-1]), atol=src.size(1) * QUANT_TOL, rtol=0)
    assert any("one attention" in n for n in data["notes"])
    assert "GRU" in ex.describe() and "1 attention layer(s)" in ex.describe()


def test_the_command_writes_answers_page_and_bad_input_is_one_line(translate_runs, tmp_path, capsys):
    run = translate_runs["transformer"]
    out = tmp_path / "tr.html"
    assert main(["explore", "--checkpoint", str(run), SENTENCE, "--beam", "2", "--out", str(out)]) == 0
    assert page_data(out.read_text()) == page_data(render(Explorer.load(run).answer(Request(text=SENTENCE, beam=2))))
    capsys.readouterr()
    for extra, match in ((["--beam", "0"], "--beam must be >= 1 (1 = greedy)"),
                         (["--pair", "x"], "translation model explores one source sentence"),
                         (["--compare", "you are late."], "translation model explores one source sentence"),
                         (["--length-penalty", "-1"], "--length-penalty must be a finite number >= 0")):
        bad = tmp_path / "bad.html"
        assert main(["explore", "--checkpoint", str(run), SENTENCE, "--out", str(bad), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
        assert not bad.exists()
    with pytest.raises(AttnlabError, match="pass a sentence to translate"):
        Explorer.load(run).translation("   ")


def test_notebook_explore_takes_a_translation_run(translate_runs):
    run = translate_runs["transformer"]
    view = attnlab.explore(run, SENTENCE, beam=2)
    assert view.data == Explorer.load(run).answer(Request(text=SENTENCE, beam=2))
    assert "srcdoc" in view._repr_html_()


# ---------------------------------------------------------------------- readable pieces
def unescape(pieces: list[str], space: str) -> str:
    """Readable pieces back to text: the space marker to a space, each \\xNN to its byte."""
    joined = "".join(pieces).replace(space, " ")
    raw = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(0xF700 + int(m.group(1), 16)), joined)  # mark bytes
    out = bytearray()
    for c in raw:
        out += bytes([ord(c) - 0xF700]) if 0xF700 <= ord(c) < 0xF800 else c.encode("utf-8")
    return out.decode("utf-8")


def test_translation_pieces_are_readable_and_spell_the_source(translate_runs):
    ex = Explorer.load(translate_runs["transformer"])
    text = "Il est prêt, à 9h."
    data = ex.translation(text)
    keys = data["keys"]
    assert not data["notes"], "the sentence fits the model's max_len: no piece is cut"
    assert not any("\ufffd" in k for k in keys)  # a split character shows its bytes, never U+FFFD
    assert any(re.search(r"\\x[0-9a-f]{2}", k) for k in keys), "the tiny BPE splits some accented letter"
    assert unescape(keys, "\u2581") == " " + text  # byte-level BPE adds the leading space


def test_gpt2_pieces_are_readable(gpt2_dir):
    ex = Explorer.load(gpt2_dir)
    data = ex.generation("To be, or not to be: that is", 4)
    tokens = data["tokens"]
    assert not any("\u0120" in t for t in tokens), "GPT-2's raw byte symbol for a space (Ġ) on the page"
    assert any(t.startswith("\u2423") and len(t) > 1 for t in tokens)  # a word's leading space made visible
    from transformers import GPT2TokenizerFast

    ref = GPT2TokenizerFast.from_pretrained(str(gpt2_dir))
    ids = ref("To be, or not to be: that is")["input_ids"]
    assert "".join(tokens[: len(ids)]).replace("\u2423", " ") == "To be, or not to be: that is"
    new = [s["token"] for s in data["generation"]["steps"]]
    assert new == tokens[len(ids):]


# ---------------------------------------------------------------------- BERT sentence pairs
def test_bert_pair_tokens_types_and_attention_are_transformers(bert_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    a, b = "the plot was thin", "the actors were great"
    ex = Explorer.load(bert_dir)
    data = ex.answer(Request(text=a, pair=b))
    tok = transformers.BertTokenizerFast.from_pretrained(str(bert_dir))
    enc = tok(a, b, return_tensors="pt")
    assert data["tokens"] == tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert data["segments"] == enc["token_type_ids"][0].tolist() and 0 in data["segments"] and 1 in data["segments"]
    ref = transformers.BertForSequenceClassification.from_pretrained(str(bert_dir), attn_implementation="eager").eval()
    with torch.no_grad():
        out = ref(**enc, output_attentions=True)
    page = unpack(data["attention"])
    torch.testing.assert_close(page, torch.stack([x[0] for x in out.attentions]), atol=QUANT_TOL + 2e-6, rtol=0)
    probs = torch.softmax(out.logits[0], -1)
    assert data["prediction"]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    # the token types matter: the same ids, all of type 0, attend differently
    ids, lengths, types = ex.reader.text(f"{a} [SEP] {b}", 64).inputs
    assert types[0].tolist() == data["segments"]
    with torch.no_grad():
        untyped = ex.model.attend(ids, lengths, torch.zeros_like(types))
    assert (torch.stack([x[0] for x in untyped.attentions]) - page).abs().max() > 1e-3
    # the command line's --pair writes the same page
    out_file = tmp_path / "pair.html"
    assert main(["explore", "--checkpoint", str(bert_dir), a, "--pair", b, "--out", str(out_file)]) == 0
    assert page_data(out_file.read_text()) == page_data(render(data))
    view = attnlab.explore(bert_dir, a, pair=b)
    assert view.data == data


def test_pair_needs_a_bert_and_two_texts(bert_dir, gpt2_dir):
    with pytest.raises(AttnlabError, match="--pair needs a BERT classifier"):
        Explorer.load(gpt2_dir).answer(Request(text="To be", pair="or not"))
    ex = Explorer.load(bert_dir)
    with pytest.raises(AttnlabError, match="the --pair text is empty"):
        ex.answer(Request(text="the plot", pair="  "))
    with pytest.raises(AttnlabError, match="--pair needs a first text"):
        ex.answer(Request(pair="the plot"))
    with pytest.raises(AttnlabError, match="--pair shows one sentence pair"):
        ex.answer(Request(text="the plot", pair="a film", compare="a plot"))
    with pytest.raises(AttnlabError, match="--beam is for a translation model"):
        ex.answer(Request(text="the plot", beam=2))
    assert "segments" not in ex.answer(Request(text="the plot was thin"))  # one sentence: no pair filters
