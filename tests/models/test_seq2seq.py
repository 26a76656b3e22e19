"""The encoder-decoder models: masks, padding, cross-attention weights against a by-hand softmax,
cached against uncached decoding, beam search against greedy, and the RNN baseline's attention."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.models.configs import Seq2SeqConfig
from attnlab.models.decoding_seq2seq import beam_search, greedy_decode, strip, translate_ids
from attnlab.models.rnn_seq2seq import RNNSeq2Seq, reverse_within_lengths
from attnlab.models.seq2seq import Seq2SeqTransformer

PAD, BOS, EOS = 0, 1, 2
V = 40


def transformer(**kw) -> Seq2SeqTransformer:
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(dim=32, num_heads=4, mlp_dim=64, encoder_layers=2, decoder_layers=2, dropout=0.0, **kw)
    return Seq2SeqTransformer(cfg, V, V, pad_id=PAD).eval()


def rnn(cell: str = "gru") -> RNNSeq2Seq:
    torch.manual_seed(0)
    return RNNSeq2Seq(Seq2SeqConfig(name="rnn", dim=24, hidden_size=16, cell=cell, dropout=0.0), V, V).eval()


def batch(b: int = 3, s: int = 7, t: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, V, (b, s), generator=g)
    src[0, 4:] = PAD  # row 0 has 4 real source tokens
    tgt = torch.randint(3, V, (b, t), generator=g)
    tgt[:, 0] = BOS
    return src, tgt


MODELS = {"transformer": transformer, "gru": lambda: rnn("gru"), "lstm": lambda: rnn("lstm")}


@pytest.mark.parametrize("name", list(MODELS))
def test_changing_target_token_j_changes_no_output_before_j(name):
    model = MODELS[name]()
    src, tgt = batch()
    j = 3
    changed = tgt.clone()
    changed[:, j] = (tgt[:, j] + 1 - 3) % (V - 3) + 3
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :j], b[:, :j], atol=1e-6, rtol=0)
    assert (a[:, j:] - b[:, j:]).abs().amax() > 1e-3  # the change reaches position j and later


@pytest.mark.parametrize("name", list(MODELS))
def test_source_padding_changes_nothing_for_the_real_tokens(name):
    model = MODELS[name]()
    src, tgt = batch()
    padded = torch.cat([src, torch.full((3, 5), PAD)], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded, tgt), model(src, tgt), atol=1e-5, rtol=0)
        alone = model(src[:1, :4], tgt[:1])  # row 0 without any padding at all
    torch.testing.assert_close(model(src, tgt)[:1].detach(), alone, atol=1e-5, rtol=0)


def test_attend_returns_forward_and_the_cross_attention_by_hand():
    model = transformer()
    src, tgt = batch()
    att = model.attend(src, tgt)
    torch.testing.assert_close(att.output, model(src, tgt), atol=1e-5, rtol=0)
    assert len(att.attentions) == 2 and att.attentions[0].shape == (3, 4, 6, 7)  # (B, H, T_tgt, T_src)
    assert [w.shape for w in att.extra["encoder"]] == [(3, 4, 7, 7)] * 2
    assert [w.shape for w in att.extra["decoder"]] == [(3, 4, 6, 6)] * 2
    assert att.extra["source_lengths"].tolist() == [4, 7, 7]
    # layer 0 by hand: the decoder's queries after its self-attention, the memory's keys
    with torch.no_grad():
        memory, _ = model.encode(src)
        block = model.decoder[0]
        x = model.pos(model.tgt_embed(tgt) * math.sqrt(32))
        x = x + block.self_attn(block.norm1(x), is_causal=True)[0]
        h, hd = 4, 8
        q = block.cross_attn.W_Q(block.norm2(x)).view(3, 6, h, hd).transpose(1, 2)  # (B, H, T, hd)
        k = block.cross_attn.kv(memory)[..., : h * hd].view(3, 7, h, hd).transpose(1, 2)  # (B, H, S, hd)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill((src == PAD)[:, None, None, :], -math.inf)
        by_hand = torch.softmax(scores, -1)
    torch.testing.assert_close(att.attentions[0], by_hand, atol=1e-6, rtol=0)
    sums = att.attentions[1].sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-6, rtol=0)  # over the real source tokens
    assert torch.equal(att.attentions[1][0, :, :, 4:], torch.zeros(4, 6, 3))  # nothing on padding


def test_cached_decoding_equals_uncached_token_for_token_and_in_the_logits():
    model = transformer()
    src, _ = batch()
    cached = greedy_decode(model, src, bos=BOS, eos=EOS, pad=PAD, max_len=12, keep_logits=True)
    plain = greedy_decode(model, src, bos=BOS, eos=EOS, pad=PAD, max_len=12, cache=False, keep_logits=True)
    assert cached.tokens.shape == (3, 12) and torch.equal(cached.tokens, plain.tokens)
    assert cached.logits is not None and plain.logits is not None
    torch.testing.assert_close(cached.logits, plain.logits, atol=1e-5, rtol=0)
    # and both are the teacher-forced forward pass over the tokens they produced
    fed = torch.cat([torch.full((3, 1), BOS), cached.tokens[:, :-1]], 1)
    with torch.no_grad():
        torch.testing.assert_close(cached.logits, model(src, fed), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_beam_width_one_is_greedy(name):
    model = MODELS[name]()
    src, _ = batch(b=4, seed=3)
    greedy = greedy_decode(model, src, bos=BOS, eos=EOS, pad=PAD, max_len=10)
    beam = beam_search(model, src, bos=BOS, eos=EOS, pad=PAD, max_len=10, beam=1)
    assert torch.equal(beam.tokens, greedy.tokens)
    torch.testing.assert_close(beam.scores, greedy.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["transformer", "gru"])
def test_a_beams_score_is_the_log_probability_of_its_tokens(name):
    """The winner's reported score is the summed log-softmax of the teacher-forced pass over it."""
    model = MODELS[name]()
    src, _ = batch(b=3, seed=5)
    found = beam_search(model, src, bos=BOS, eos=EOS, pad=PAD, max_len=8, beam=4, length_penalty=0.6)
    fed = torch.cat([torch.full((3, 1), BOS), found.tokens[:, :-1]], 1)
    with torch.no_grad():
        logp = torch.log_softmax(model(src, fed), -1).gather(2, found.tokens[..., None]).squeeze(2)  # (B, L)
    real = torch.ones_like(found.tokens, dtype=torch.bool)
    for row in range(3):  # the tokens up to and including the first eos count
        ends = (found.tokens[row] == EOS).nonzero()
        if len(ends):
            real[row, int(ends[0]) + 1:] = False
    torch.testing.assert_close(found.scores, (logp * real).sum(1), atol=1e-4, rtol=0)


def test_translate_ids_keeps_the_order_and_strips_eos():
    model = transformer()
    sources = [[5, 6, 7, 8], [9], [10, 11]]
    out = translate_ids(model, sources, bos=BOS, eos=EOS, pad=PAD, max_len=6, beam=1, batch_size=2)
    for ids, alone in zip(out, sources):
        single = greedy_decode(model, torch.tensor([alone]), bos=BOS, eos=EOS, pad=PAD, max_len=6)
        assert ids == strip(single.tokens[0].tolist(), eos=EOS, pad=PAD)
    assert strip([5, 6, EOS, 7, PAD], eos=EOS, pad=PAD) == [5, 6]


def test_shared_embeddings_and_tied_output_are_one_table():
    model = transformer()
    assert model.src_embed.weight is model.tgt_embed.weight is model.out.weight
    cfg = Seq2SeqConfig(dim=32, num_heads=4, mlp_dim=64, shared_embeddings=False, tie_output=False)
    apart = Seq2SeqTransformer(cfg, 30, 50)
    assert apart.src_embed.weight.shape == (30, 32) and apart.out.weight.shape == (50, 32)
    assert apart.out.weight is not apart.tgt_embed.weight


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_attention_weights_sum_to_one_over_the_real_source_tokens(cell):
    model = rnn(cell)
    src, tgt = batch()
    att = model.attend(src, tgt)
    torch.testing.assert_close(att.output, model(src, tgt), atol=0, rtol=0)
    w = att.attentions[0]
    assert w.shape == (3, 1, 6, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 1, 6), atol=1e-6, rtol=0)
    assert torch.equal(w[0, :, :, 4:], torch.zeros(1, 6, 3))


def test_reverse_within_lengths():
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    assert reverse_within_lengths(x, torch.tensor([3, 5])).tolist() == [[3, 2, 1, 0, 0], [8, 7, 6, 5, 4]]
