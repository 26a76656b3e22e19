"""The hand-written BPTT equals autograd, and the linear RNN's closed form holds."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.lab.rnn import ElmanRNN, bptt, linear_rnn_closed_form

F64 = torch.float64


def _data(T: int, seed: int, *, n_x: int = 3, n_y: int = 2, onehot: bool = True):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(T, n_x, generator=g, dtype=F64)
    labels = torch.randint(0, n_y, (T,), generator=g)
    ys = torch.nn.functional.one_hot(labels, n_y).to(F64) if onehot else labels
    return xs, ys


def _autograd(model: ElmanRNN, xs, ys):
    model.zero_grad(set_to_none=True)
    loss = model.loss(xs, ys)
    loss.backward()
    return loss.detach(), model.W_hh.grad, model.W_hx.grad, model.W_yh.grad


def test_course_defaults():
    m = ElmanRNN()
    assert m.W_hx.shape == (4, 3) and m.W_hh.shape == (4, 4) and m.W_yh.shape == (2, 4)
    assert m.activation == "identity"
    assert ElmanRNN(dtype=F64).W_hh.dtype == F64
    y_hat, hs = m(torch.randn(5, 3))
    assert y_hat.shape == (5, 2) and hs.shape == (5, 4)
    torch.testing.assert_close(y_hat.sum(-1), torch.ones(5))


@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("T", [1, 3, 17])
def test_bptt_equals_autograd(activation, seed, T):
    torch.manual_seed(seed)
    m = ElmanRNN(activation=activation, dtype=F64)
    xs, ys = _data(T, seed, onehot=seed % 2 == 0)  # one-hot rows and class indices
    res = m.bptt(xs, ys)
    loss, g_hh, g_hx, g_yh = _autograd(m, xs, ys)
    for mine, ref in [(res.loss, loss), (res.dW_hh, g_hh), (res.dW_hx, g_hx), (res.dW_yh, g_yh)]:
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_bptt_long_sequence(activation):
    torch.manual_seed(3)
    m = ElmanRNN(activation=activation, dtype=F64)
    xs, ys = _data(500, 3)
    res = bptt(m, xs, ys, per_step=False)
    assert res.dJt_dh is None
    loss, g_hh, g_hx, g_yh = _autograd(m, xs, ys)
    scale = max(1.0, g_hh.abs().max().item())  # J sums 500 terms: compare relative to its size
    for mine, ref in [(res.dW_hh, g_hh), (res.dW_hx, g_hx), (res.dW_yh, g_yh)]:
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-8 * scale)


def test_intermediates_match_autograd():
    torch.manual_seed(4)
    m = ElmanRNN(activation="tanh", dtype=F64)
    T = 6
    xs, ys = _data(T, 4)
    res = m.bptt(xs, ys)
    # dJ_t/do_t = y_hat_t - y_t
    y_hat, _ = m(xs)
    torch.testing.assert_close(res.dJ_do, (y_hat - ys).detach(), rtol=0, atol=1e-12)
    # dJ_t/dh_i from autograd, one J_t at a time, by differentiating through the states.
    _, hs = m.states(xs)
    for t in range(T):
        # h_i for i > t does not influence J_t; autograd of J_t w.r.t. the stacked states gives
        # only the *direct* term, so rebuild the recurrence from each h_i instead.
        for i in range(t + 1):
            h = hs[i].detach().requires_grad_(True)
            g = h
            for j in range(i + 1, t + 1):
                g = m.psi(m.W_hx @ xs[j] + m.W_hh @ g)
            J = -(ys[t] * torch.log_softmax(m.W_yh @ g, -1)).sum()
            (grad,) = torch.autograd.grad(J, h)
            torch.testing.assert_close(res.dJt_dh[t, i], grad, rtol=0, atol=1e-10)
    assert torch.all(res.dJt_dh[0, 1:] == 0)  # J_1 does not depend on later states
    torch.testing.assert_close(res.dJt_dh.sum(0), res.dJ_dh, rtol=0, atol=1e-12)


def test_linear_closed_form():
    torch.manual_seed(5)
    m = ElmanRNN(dtype=F64)
    for T in (1, 2, 10, 50):
        xs, _ = _data(T, T)
        _, hs = m.states(xs)
        torch.testing.assert_close(linear_rnn_closed_form(m.W_hh, m.W_hx, xs), hs[-1].detach(), rtol=1e-10, atol=1e-12)


def test_bad_input_is_a_clear_error():
    m = ElmanRNN()
    with pytest.raises(AttnlabError, match=r"\(T, 3\)"):
        m(torch.randn(4, 5))
    with pytest.raises(AttnlabError, match="activation"):
        ElmanRNN(activation="relu6")
