"""Sentiment models: shapes, gradients, padding invariance, unknown words, the attention math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.models.text import (
    FFNN,
    Attention,
    AttentionClassifier,
    LogisticRegressionClassifier,
    TextClassificationRNN,
    TextClassificationTransformer,
    reverse_within_length,
)
from attnlab.vocab import UNK_ID

V, E, T = 30, 8, 12


def vectors(seed=0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(V, E, generator=g)
    table[:2] = 0  # padding, unknown
    return table


def make(name):
    torch.manual_seed(0)
    if name == "logreg":
        return LogisticRegressionClassifier(embeddings=vectors())
    if name == "ffnn":
        return FFNN(embeddings=vectors(), hidden_size=20)
    if name == "attention":
        return AttentionClassifier(embeddings=vectors(), query_key_size=5)
    if name == "transformer":
        return TextClassificationTransformer(vocab_size=V, max_len=32, dim=16, num_heads=2, mlp_dim=32,
                                             num_layers=2, pooling="meanmax", pretrained=vectors())
    if name == "gru":
        return TextClassificationRNN(vocab_size=V, dim=16, hidden_size=8, cell="gru", pooling="max")
    if name == "packed":
        return TextClassificationRNN(vocab_size=V, dim=16, hidden_size=8, cell="lstm", pooling="max",
                                     packed=True)
    return TextClassificationRNN(vocab_size=V, dim=16, hidden_size=8, cell="lstm", pooling="last",
                                 num_layers=2)


NAMES = ["logreg", "ffnn", "attention", "transformer", "gru", "lstm", "packed"]


def batch(seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T, 3, 7, 1][:b])
    ids = torch.randint(1, V, (b, T), generator=g)
    ids[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_every_trainable_parameter_gets_a_gradient(name):
    model = make(name)
    ids, lengths = batch()
    logits = model(ids, lengths)
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    frozen = {"embedding.weight"} if name in ("logreg", "ffnn", "attention") else set()  # pretrained vectors
    for pname, p in model.named_parameters():
        if pname in frozen:
            assert not p.requires_grad and p.grad is None, pname
        else:
            assert p.requires_grad and p.grad is not None, pname
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_a_prediction(name):
    model = make(name).eval()
    ids, lengths = batch()
    padded = torch.cat([ids, torch.zeros(4, 20, dtype=ids.dtype)], dim=1)  # 20 more padding columns
    # and garbage *behind* the length must not matter either (it is padding by definition)
    with torch.no_grad():
        a = model(ids, lengths)
        b = model(padded, lengths)
        single = torch.cat([model(ids[i:i + 1, :int(lengths[i])], lengths[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, single, atol=1e-5, rtol=1e-5)  # same as unbatched, no padding at all


@pytest.mark.parametrize("name", ["logreg", "ffnn", "attention"])
def test_review_of_only_unknown_words_has_a_known_output(name):
    model = make(name).eval()
    ids = torch.full((2, 5), UNK_ID)  # all <unk>; the second review is one word long
    with torch.no_grad():
        logits = model(ids, torch.tensor([5, 1]))
        if name == "logreg":  # the average of no known vector is the zero vector -> the bias alone
            expected = model.linear.bias
        elif name == "ffnn":  # zero vector -> hidden pre-activation is its bias -> out(tanh(bias))
            expected = model.out(torch.tanh(model.hidden.bias).repeat(2, 1))  # a batch of 2: the same kernel
        else:
            # <unk>'s vector is zero, and q, k, v have no bias: every score is 0 and every value
            # the zero vector, so each token's output is 0, their mean is 0 -> the bias alone.
            expected = model.linear.bias
    torch.testing.assert_close(logits, expected.expand(2, 2), atol=0, rtol=0)
    if name == "attention":  # equal scores: uniform weights over the real tokens, zero on the padding
        (weights,) = model.attend(ids, torch.tensor([5, 1])).attentions  # one layer of one head
        torch.testing.assert_close(weights[0, 0], torch.full((5, 5), 0.2))
        torch.testing.assert_close(weights[1, 0], torch.tensor([1.0, 0, 0, 0, 0]).expand(5, 5))


def test_averaging_skips_unknown_words():
    model = make("logreg").eval()
    table = model.embedding.weight
    ids = torch.tensor([[5, 1, 7, 0]])
    expected = model.linear((table[5] + table[7]) / 2)
    torch.testing.assert_close(model(ids, torch.tensor([3]))[0], expected)


def test_attention_is_the_course_formula_through_the_core_function():
    torch.manual_seed(0)
    att = Attention(E, 5)
    assert att.W_Q.bias is None and att.W_K.bias is None and att.W_V.bias is None
    assert att.W_Q.weight.shape == (5, E) and att.W_V.weight.shape == (E, E)
    x = torch.randn(2, 6, E)
    out, A = att(x)
    q, k, v = x @ att.W_Q.weight.T, x @ att.W_K.weight.T, x @ att.W_V.weight.T
    ref_A = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(5), dim=-1)
    torch.testing.assert_close(A, ref_A)
    torch.testing.assert_close(out, ref_A @ v)
    # with a padding mask, padded keys get exactly zero weight
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, :]
    _, A = att(x, mask)
    assert (A[0, :, 4:] == 0).all()
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 6))


@pytest.mark.parametrize("name", ["attention", "transformer"])
def test_attention_weights_for_explain(name):
    model = make(name).eval()
    ids, lengths = batch()
    attended = model.attend(ids, lengths)
    heads = 1 if name == "attention" else model.blocks[0].attn.num_heads
    assert [tuple(w.shape) for w in attended.attentions] == [(4, heads, T, T)] * len(attended.attentions)
    for w in attended.attentions:
        assert (w[1, :, :, 3:] == 0).all()  # no attention to padding
    assert attended.lengths.tolist() == lengths.tolist()
    torch.testing.assert_close(attended.output, model(ids, lengths))


def test_transformer_overfits_a_small_batch():
    torch.manual_seed(0)
    model = TextClassificationTransformer(vocab_size=V, max_len=16, dim=16, num_heads=2, mlp_dim=32,
                                          dropout=0.0)
    ids, lengths = batch()
    labels = torch.tensor([0, 1, 1, 0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(ids, lengths), labels)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@pytest.mark.parametrize("cell,pooling,layers", [("lstm", "max", 1), ("gru", "last", 2), ("lstm", "last", 2)])
def test_rnn_fast_path_equals_packed_sequences(cell, pooling, layers):
    """The padded path (backward direction reversed within each length) == pack_padded_sequence."""
    torch.manual_seed(0)
    model = TextClassificationRNN(vocab_size=V, dim=16, hidden_size=8, cell=cell, pooling=pooling,
                                  num_layers=layers).eval()
    ids, lengths = batch()
    fast = model(ids, lengths)
    model.packed = True
    torch.testing.assert_close(model(ids, lengths), fast, atol=1e-5, rtol=1e-5)
    # and both equal a plain bidirectional nn.LSTM/GRU run on each review alone (no padding at all)
    if layers == 1:
        ref = getattr(torch.nn, cell.upper())(16, 8, batch_first=True, bidirectional=True)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l0").copy_(getattr(model.fwd[0], f"{name}_l0"))
                getattr(ref, f"{name}_l0_reverse").copy_(getattr(model.bwd[0], f"{name}_l0"))
            for b in range(4):
                n = int(lengths[b])
                out, _ = ref(model.embedding(ids[b:b + 1, :n]))  # (1, n, 16)
                feat = out.amax(1)
                torch.testing.assert_close(model.head(feat)[0], fast[b], atol=1e-5, rtol=1e-5)


def test_reverse_within_length():
    x = torch.arange(8).view(2, 4, 1)
    out = reverse_within_length(x, torch.tensor([3, 1]))
    assert out[..., 0].tolist() == [[2, 1, 0, 3], [4, 5, 6, 7]]
