"""The course's Elman RNN, and backpropagation through time written out by hand (no autograd).

Notation (one sequence, time steps ``t = 1..T``, ``h_0 = 0`` unless given)::

    z_t     = W_hx x_t + W_hh h_{t-1}        # pre-activation,  R^{n_h}
    h_t     = psi(z_t)                       # psi = identity (course default) or tanh
    o_t     = W_yh h_t                       # logits,          R^{n_y}
    y_hat_t = sigma(o_t)                     # sigma = softmax
    J_t     = -sum_k y_t[k] log y_hat_t[k]   # cross-entropy;   J = sum_t J_t

BPTT (what :func:`bptt` computes, in the same symbols)::

    dJ_t/do_t     = y_hat_t - y_t                                   (softmax + cross-entropy)
    dJ_t/dh_t     = W_yh^T (y_hat_t - y_t)
    dJ_t/dh_{i-1} = W_hh^T diag(psi'(z_i)) dJ_t/dh_i                (i <= t: the path back in time)
    dJ/dW_hh      = sum_t sum_{i<=t} diag(psi'(z_i)) dJ_t/dh_i  h_{i-1}^T
    dJ/dW_hx      = sum_t sum_{i<=t} diag(psi'(z_i)) dJ_t/dh_i  x_i^T
    dJ/dW_yh      = sum_t (y_hat_t - y_t) h_t^T

The double sums are computed in O(T) with the running total ``delta_i = sum_{t>=i} dJ_t/dh_i``
(``delta_i = W_yh^T (y_hat_i - y_i) + W_hh^T diag(psi'(z_{i+1})) delta_{i+1}``); the per-step
table ``dJ_t/dh_i`` is returned as well, because it is what the course asks you to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError

__all__ = ["ElmanRNN", "BPTTResult", "bptt", "linear_rnn_closed_form"]

_ACTIVATIONS = ("identity", "tanh")


class ElmanRNN(nn.Module):
    """Elman RNN with the course's sizes: x in R^3, h in R^4, y in R^2, no biases.

    ``W_hx`` is ``n_h x n_x``, ``W_hh`` is ``n_h x n_h`` and ``W_yh`` is ``n_y x n_h`` (so
    ``z_t = W_hx x_t + W_hh h_{t-1}`` reads exactly as in the notes). ``activation`` is psi:
    ``"identity"`` (the course's linear RNN) or ``"tanh"``. Pass ``dtype=torch.float64`` for
    gradient checks.
    """

    def __init__(
        self,
        *,
        n_x: int = 3,
        n_h: int = 4,
        n_y: int = 2,
        activation: str = "identity",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise AttnlabError(f"unknown activation {activation!r}; use one of {', '.join(_ACTIVATIONS)}")
        self.activation = activation
        # Scaled so that the hidden state neither explodes nor vanishes at initialisation.
        self.W_hx = nn.Parameter(torch.randn(n_h, n_x, dtype=dtype, device=device) / n_x**0.5)
        self.W_hh = nn.Parameter(torch.randn(n_h, n_h, dtype=dtype, device=device) / n_h**0.5 * 0.5)
        self.W_yh = nn.Parameter(torch.randn(n_y, n_h, dtype=dtype, device=device) / n_h**0.5)

    def psi(self, z: Tensor) -> Tensor:
        return z if self.activation == "identity" else torch.tanh(z)

    def psi_prime(self, z: Tensor, h: Tensor) -> Tensor:
        """psi'(z), elementwise (``h = psi(z)`` is passed so tanh' = 1 - h^2 costs nothing)."""
        return torch.ones_like(z) if self.activation == "identity" else 1.0 - h * h

    def states(self, xs: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the recurrence: ``xs`` (T, n_x) -> ``(zs, hs)``, both (T, n_h)."""
        xs = _check_xs(xs, self.W_hx.size(1))
        h = xs.new_zeros(self.W_hh.size(0)) if h0 is None else h0
        zs, hs = [], []
        for x in xs:  # sequential by nature: h_t needs h_{t-1}
            z = self.W_hx @ x + self.W_hh @ h
            h = self.psi(z)
            zs.append(z)
            hs.append(h)
        return torch.stack(zs), torch.stack(hs)  # (T, n_h) each

    def forward(self, xs: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``xs`` (T, n_x) -> ``(y_hat (T, n_y), hs (T, n_h))``."""
        _, hs = self.states(xs, h0)
        return torch.softmax(hs @ self.W_yh.T, dim=-1), hs  # (T, n_y)

    def loss(self, xs: Tensor, ys: Tensor, h0: Tensor | None = None) -> Tensor:
        """``J = sum_t J_t``, the summed cross-entropy (differentiable; autograd's reference)."""
        _, hs = self.states(xs, h0)
        logp = torch.log_softmax(hs @ self.W_yh.T, dim=-1)  # (T, n_y)
        return -(_targets(ys, self.W_yh.size(0), logp) * logp).sum()

    def bptt(self, xs: Tensor, ys: Tensor, h0: Tensor | None = None, *, per_step: bool = True) -> BPTTResult:
        """Gradients of ``J`` by hand-written backpropagation through time; see :func:`bptt`."""
        return bptt(self, xs, ys, h0, per_step=per_step)


@dataclass
class BPTTResult:
    """Gradients of ``J = sum_t J_t`` and the intermediates of backpropagation through time."""

    loss: Tensor  # J, a 0-d tensor
    dW_hh: Tensor  # (n_h, n_h)
    dW_hx: Tensor  # (n_h, n_x)
    dW_yh: Tensor  # (n_y, n_h)
    dJ_do: Tensor  # (T, n_y): row t is dJ_t/do_t = y_hat_t - y_t
    dJ_dh: Tensor  # (T, n_h): row i is dJ/dh_i = sum_{t>=i} dJ_t/dh_i (the running delta)
    dJt_dh: Tensor | None  # (T, T, n_h): [t, i] is dJ_t/dh_i, zero for i > t; None if not asked


@torch.no_grad()
def bptt(
    model: ElmanRNN,
    xs: Tensor,
    ys: Tensor,
    h0: Tensor | None = None,
    *,
    per_step: bool = True,
) -> BPTTResult:
    """Backpropagation through time by hand for :class:`ElmanRNN` -- no autograd anywhere.

    ``xs`` is (T, n_x); ``ys`` is (T, n_y) one-hot rows (or distributions) or (T,) class
    indices. ``per_step=False`` skips the O(T^2) table ``dJ_t/dh_i`` for long sequences.
    """
    W_hh, W_yh = model.W_hh, model.W_yh
    zs, hs = model.states(xs, h0)  # (T, n_h) each
    T = xs.size(0)
    o = hs @ W_yh.T  # (T, n_y)
    y_hat = torch.softmax(o, dim=-1)
    y = _targets(ys, W_yh.size(0), o)
    loss = -(y * torch.log_softmax(o, dim=-1)).sum()
    dJ_do = y_hat - y  # (T, n_y): softmax followed by cross-entropy
    local = dJ_do @ W_yh  # (T, n_h): row t is dJ_t/dh_t = W_yh^T (y_hat_t - y_t)
    dpsi = model.psi_prime(zs, hs)  # (T, n_h): psi'(z_t)
    h_prev = torch.cat([hs.new_zeros(1, hs.size(1)) if h0 is None else h0[None], hs[:-1]])  # (T, n_h)

    # Running delta, from the last step back: delta_i = dJ_i/dh_i + W_hh^T (psi'(z_{i+1}) * delta_{i+1}).
    dJ_dh = torch.empty_like(hs)
    carry = hs.new_zeros(hs.size(1))  # W_hh^T (psi'(z_{i+1}) * delta_{i+1}); nothing after T
    for i in range(T - 1, -1, -1):
        dJ_dh[i] = local[i] + carry
        carry = W_hh.T @ (dpsi[i] * dJ_dh[i])
    dJ_dz = dpsi * dJ_dh  # (T, n_h): dJ/dz_i
    dW_hh = dJ_dz.T @ h_prev  # sum_i dJ/dz_i h_{i-1}^T
    dW_hx = dJ_dz.T @ xs  # sum_i dJ/dz_i x_i^T
    dW_yh = dJ_do.T @ hs  # sum_t (y_hat_t - y_t) h_t^T

    table = None
    if per_step:
        # dJ_t/dh_i for every pair, following each J_t back on its own (the course's double sum).
        table = hs.new_zeros(T, T, hs.size(1))  # (T, T, n_h)
        for t in range(T):
            g = local[t]
            for i in range(t, -1, -1):
                table[t, i] = g
                g = W_hh.T @ (dpsi[i] * g)
    return BPTTResult(loss, dW_hh, dW_hx, dW_yh, dJ_do, dJ_dh, table)


def linear_rnn_closed_form(W_hh: Tensor, W_hx: Tensor, xs: Tensor) -> Tensor:
    """``h_T = sum_{t=1}^T W_hh^(T-t) W_hx x_t`` for the linear RNN (psi = identity, h_0 = 0)."""
    xs = _check_xs(xs, W_hx.size(1))
    T = xs.size(0)
    h = xs.new_zeros(W_hh.size(0))
    power = torch.eye(W_hh.size(0), dtype=W_hh.dtype, device=W_hh.device)  # W_hh^(T-t), t = T first
    for t in range(T - 1, -1, -1):
        h = h + power @ (W_hx @ xs[t])
        power = power @ W_hh
    return h


def _check_xs(xs: Tensor, n_x: int) -> Tensor:
    if xs.dim() != 2 or xs.size(1) != n_x or xs.size(0) < 1:
        raise AttnlabError(f"xs must be a (T, {n_x}) tensor with T >= 1, got shape {tuple(xs.shape)}")
    return xs


def _targets(ys: Tensor, n_y: int, like: Tensor) -> Tensor:
    """Targets as (T, n_y) rows: class indices become one-hot vectors."""
    if ys.dim() == 1:
        if ys.dtype.is_floating_point:
            raise AttnlabError("ys must be (T,) integer class indices or (T, n_y) one-hot rows")
        return torch.nn.functional.one_hot(ys.long(), n_y).to(like.dtype)
    if ys.shape != like.shape:
        raise AttnlabError(f"ys must have shape {tuple(like.shape)} (one-hot rows), got {tuple(ys.shape)}")
    return ys.to(like.dtype)
