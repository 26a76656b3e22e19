"""SVD attention and Linformer against full attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import scaled_dot_product_attention
from attnlab.errors import AttnlabError
from attnlab.layers import MultiHeadedAttention
from attnlab.lowrank import LinformerAttention, mean_pool_projection, svd_attention

F64 = torch.float64


@pytest.mark.parametrize("shape", [(5, 5, 4), (2, 3, 7, 9, 5), (1, 12, 12, 8)])
def test_svd_attention_exact_at_full_rank(shape):
    *lead, tq, tk, d = shape
    g = torch.Generator().manual_seed(0)
    q = torch.randn(*lead, tq, d, generator=g, dtype=F64)
    k = torch.randn(*lead, tk, d, generator=g, dtype=F64)
    v = torch.randn(*lead, tk, 3, generator=g, dtype=F64)
    out, approx = svd_attention(q, k, v, rank=min(tq, tk))
    ref_out, ref_w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(approx, ref_w, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=0, atol=1e-12)


def test_svd_attention_exact_when_weights_have_low_rank_and_error_shrinks():
    # Keys take only 3 distinct values, so softmax(QK^T) has 3 distinct columns: rank <= 3.
    g = torch.Generator().manual_seed(1)
    q = torch.randn(20, 6, generator=g, dtype=F64)
    distinct = torch.randn(3, 6, generator=g, dtype=F64)
    k = distinct[torch.arange(20) % 3]
    v = torch.randn(20, 4, generator=g, dtype=F64)
    ref, _ = scaled_dot_product_attention(q, k, v)
    out, _ = svd_attention(q, k, v, rank=3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    # Generic keys: the error of the weights (Frobenius) never grows with the rank (Eckart-Young).
    k = torch.randn(20, 6, generator=g, dtype=F64) * 2
    _, w = scaled_dot_product_attention(q, k, v)
    errs = [torch.linalg.norm(svd_attention(q, k, v, r)[1] - w).item() for r in range(1, 21)]
    assert all(a >= b - 1e-12 for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-12 < errs[0]
    with pytest.raises(AttnlabError, match="rank"):
        svd_attention(q, k, v, 0)


def _linformer_and_full(dim, heads, n, k):
    torch.manual_seed(0)
    lin = LinformerAttention(dim=dim, num_heads=heads, seq_len=n, k=k).double()
    full = MultiHeadedAttention(dim, heads, dim // heads).double()
    full.load_state_dict({"qkv.weight": lin.qkv.weight, "qkv.bias": lin.qkv.bias,
                          "W_O.weight": lin.W_O.weight, "W_O.bias": lin.W_O.bias})
    with torch.no_grad():  # the principled projection: segment means (see mean_pool_projection)
        lin.E.copy_(mean_pool_projection(k, n, dtype=F64))
        lin.F.copy_(mean_pool_projection(k, n, dtype=F64))
    return lin, full


def _rel_err(lin, full, x):
    with torch.no_grad():
        ref, _ = full(x, need_weights=True)
        out, _ = lin(x)
    return (torch.linalg.norm(out - ref) / torch.linalg.norm(ref)).item()


def test_linformer_exact_on_piecewise_constant_sequences():
    # 16 segments of 4 equal tokens: pooling to k=16 rows gives each segment's key and value,
    # and every segment has the same total weight in full attention, so the two agree exactly.
    n, dim = 64, 16
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 16, dim, generator=g, dtype=F64).repeat_interleave(4, dim=1)  # (2, 64, 16)
    errs = {k: _rel_err(*_linformer_and_full(dim, 4, n, k), x) for k in (2, 4, 8, 16)}
    assert errs[16] < 1e-12
    assert errs[2] > errs[4] > errs[8] > errs[16], errs


def test_linformer_error_shrinks_as_k_grows_on_smooth_sequences():
    n, dim = 64, 16
    g = torch.Generator().manual_seed(3)
    t = torch.linspace(0, 1, n, dtype=F64)[:, None]  # (n, 1)
    freqs = torch.rand(1, dim, generator=g, dtype=F64) * 3
    phase = torch.rand(1, dim, generator=g, dtype=F64) * 2 * math.pi
    x = torch.sin(2 * math.pi * freqs * t + phase)[None] * 2  # (1, n, dim), slowly varying
    errs = [_rel_err(*_linformer_and_full(dim, 4, n, k), x) for k in (2, 4, 8, 16, 32, 64)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-12 and errs[0] > 1e-2  # k = n with segment means is the identity


def test_linformer_shapes_shorter_inputs_and_errors():
    torch.manual_seed(0)
    lin = LinformerAttention(dim=32, num_heads=4, seq_len=50, k=8)
    out, w = lin(torch.randn(3, 50, 32), need_weights=True)
    assert out.shape == (3, 50, 32) and w.shape == (3, 4, 50, 8)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 50))
    out, w = lin(torch.randn(2, 20, 32))  # shorter: the first 20 columns of E and F
    assert out.shape == (2, 20, 32) and w is None
    out.sum().backward()
    assert torch.all(lin.E.grad[:, 20:] == 0) and lin.E.grad[:, :20].abs().sum() > 0
    with pytest.raises(AttnlabError, match="seq_len=50"):
        lin(torch.randn(1, 51, 32))
    with pytest.raises(AttnlabError, match="k must be"):
        LinformerAttention(dim=32, num_heads=4, seq_len=50, k=60)
    # Padded keys are removed before the projection: their content cannot leak into the output.
    x = torch.randn(1, 10, 32)
    mask = torch.tensor([[True] * 7 + [False] * 3])
    x2 = x.clone()
    x2[:, 7:] = torch.randn(1, 3, 32)
    a, _ = lin(x, mask)
    b, _ = lin(x2, mask)
    torch.testing.assert_close(a[:, :7], b[:, :7])
