"""The attention math, pinned against NumPy by hand and PyTorch's own attention."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import (
    causal_mask,
    combine_masks,
    fused_attention,
    merge_heads,
    numpy_attention,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)


# ---- NumPy reference -------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_numpy_attention_shape(n):
    x = np.random.default_rng(0).standard_normal((n, 2))
    assert numpy_attention(x).shape == (n, 2)


def test_numpy_attention_other_sizes_and_validation():
    x = np.ones((3, 5))
    assert numpy_attention(x, input_embedding_size=5, query_key_size=4).shape == (3, 5)
    with pytest.raises(ValueError, match=r"x must be an n x 2 matrix with n >= 1, got shape \(3, 4\)"):
        numpy_attention(np.ones((3, 4)))  # wrong embedding size
    with pytest.raises(ValueError, match=r"x must be an n x 2 matrix with n >= 1, got shape \(0, 2\)"):
        numpy_attention(np.ones((0, 2)))  # no rows


def test_numpy_attention_matches_formula_and_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2))
    wq, wk, wv = rng.standard_normal((2, 37)), rng.standard_normal((2, 37)), rng.standard_normal((2, 2))
    got = numpy_attention(x, weights=(wq, wk, wv))
    # by hand, row by row
    q, k, v = x @ wq, x @ wk, x @ wv
    for i in range(6):
        s = np.array([q[i] @ k[j] for j in range(6)]) / math.sqrt(37)
        w = np.exp(s) / np.exp(s).sum()
        np.testing.assert_allclose(got[i], (w[:, None] * v).sum(0), rtol=1e-10)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    ref = F.scaled_dot_product_attention(t(q)[None], t(k)[None], t(v)[None])[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_numpy_attention_is_stable_for_huge_scores():
    # W = I: the scores are x_i . x_j / sqrt(2), about 1e8 apart (row 0: 2e8, 1e8, -6e8; row 1: 1e8,
    # 13e8, -13e8; row 2: -6e8, -13e8, 26e8). Each row's largest is its own token and exp(-7e7)
    # is exactly 0.0 in float64, so the softmax is exactly one-hot and every token returns itself.
    x = np.array([[1e4, -1e4], [3e4, 2e4], [-5e4, 1e4]])
    w = (np.eye(2), np.eye(2), np.eye(2))
    out = numpy_attention(x, query_key_size=2, weights=w)
    np.testing.assert_array_equal(out, x)
    # the PyTorch function too (float64, and float32 where the naive exp would overflow)
    for dtype in (torch.float64, torch.float32):
        t = torch.tensor(x, dtype=dtype)
        out_t, weights = scaled_dot_product_attention(t, t, t)
        assert torch.equal(weights, torch.eye(3, dtype=dtype)) and torch.equal(out_t, t)
    # one-hot on another token: row 0 looks at a key 1e4 times its own direction
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [1e4, 0.0], [-1e4, 0.0]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    out_t, weights = scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), v)
    assert weights.tolist() == [[0.0, 1.0, 0.0]] and out_t.tolist() == [[3.0, 4.0]]


def test_numpy_attention_rng_reproducible():
    x = np.ones((4, 2))
    a = numpy_attention(x, rng=np.random.default_rng(3))
    b = numpy_attention(x, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


# ---- PyTorch functions -----------------------------------------------------------------------
def _random_case(seed):
    g = torch.Generator().manual_seed(seed)
    lead = [int(torch.randint(1, 4, (1,), generator=g)) for _ in range(int(torch.randint(0, 3, (1,), generator=g)))]
    tq, tk = (int(torch.randint(1, 12, (1,), generator=g)) for _ in range(2))
    d, dv = (int(torch.randint(1, 17, (1,), generator=g)) for _ in range(2))
    q = torch.randn(*lead, tq, d, generator=g, dtype=torch.float64)
    k = torch.randn(*lead, tk, d, generator=g, dtype=torch.float64)
    v = torch.randn(*lead, tk, dv, generator=g, dtype=torch.float64)
    mask = torch.rand(*lead, tq, tk, generator=g) > 0.3
    mask[..., 0] = True  # PyTorch returns NaN for fully masked rows; compare where it is defined
    return q, k, v, mask


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_torch(seed, masked):
    q, k, v, mask = _random_case(seed)
    mask = mask if masked else None
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=w.dtype))
    torch.testing.assert_close(fused_attention(q, k, v, mask), ref, atol=1e-5, rtol=1e-5)


def test_int_mask_same_as_bool_and_masked_weights_exactly_zero():
    q, k, v, mask = _random_case(5)
    out_b, w_b = scaled_dot_product_attention(q, k, v, mask)
    out_i, w_i = scaled_dot_product_attention(q, k, v, mask.long())
    torch.testing.assert_close(out_b, out_i)
    assert (w_b[~mask.expand_as(w_b)] == 0).all()


def test_self_and_previous_token_pattern():
    T = 6
    mask = torch.eye(T, dtype=torch.bool) | torch.eye(T, dtype=torch.bool).roll(-1, dims=1).tril()
    # row i may attend to i and i-1
    x = torch.randn(1, T, 4)
    _, w = scaled_dot_product_attention(x, x, x, mask)
    nonzero = w[0] != 0
    assert torch.equal(nonzero, mask)


def test_fully_masked_rows_give_zeros_and_no_nan_in_grads():
    q = torch.randn(2, 3, 4, 8, requires_grad=True)
    k = torch.randn(2, 3, 5, 8, requires_grad=True)
    v = torch.randn(2, 3, 5, 8, requires_grad=True)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1] = False  # query 1 sees nothing
    for fn in (lambda: scaled_dot_product_attention(q, k, v, mask)[0], lambda: fused_attention(q, k, v, mask)):
        out = fn()
        assert torch.isfinite(out).all() and (out[:, :, 1] == 0).all()
        out.sum().backward()
        for t in (q, k, v):
            assert torch.isfinite(t.grad).all()
        assert (q.grad[:, :, 1] == 0).all()
        q.grad = k.grad = v.grad = None
    _, w = scaled_dot_product_attention(q, k, v, mask)
    assert (w[:, :, 1] == 0).all()


def test_causal_mask_alignment():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # two new queries after three cached keys: bottom-right aligned
    assert torch.equal(
        causal_mask(2, 5), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    )
    with pytest.raises(ValueError, match="causal_mask needs t_q <= t_k, got t_q=4, t_k=2"):
        causal_mask(4, 2)


def test_is_causal_matches_torch_and_cached_suffix():
    q, k, v = (torch.randn(2, 7, 8) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True)[0], ref)
    torch.testing.assert_close(fused_attention(q, k, v, is_causal=True), ref)
    # the last 3 queries against all keys equal the last 3 rows of the full causal result
    torch.testing.assert_close(fused_attention(q[:, 4:], k, v, is_causal=True), ref[:, 4:])
    torch.testing.assert_close(scaled_dot_product_attention(q[:, 4:], k, v, is_causal=True)[0], ref[:, 4:])


def test_padding_and_combined_masks():
    input_mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pm = padding_mask(input_mask)
    assert pm.shape == (2, 1, 1, 3) and pm.dtype == torch.bool
    both = combine_masks(causal_mask(3), pm)
    assert both.shape == (2, 1, 3, 3)
    assert torch.equal(both[1, 0], torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.bool))
    assert combine_masks(None, None) is None
    with pytest.raises(ValueError, match=r"input_mask must be \(batch, seq_len\), got shape \(3,\)"):
        padding_mask(torch.ones(3))


# ---- heads -------------------------------------------------------------------------------------
def test_split_heads_slices_parts_then_heads_and_merge_undoes_it():
    B, T, H, hd = 2, 5, 3, 4
    x = torch.randn(B, T, 3 * H * hd)
    q, k, v = split_heads(x, 3, H)
    for i, part in enumerate((q, k, v)):
        assert part.shape == (B, H, T, hd)
        for h in range(H):  # part i, head h is the slice [i*H*hd + h*hd, ... + hd) of the last axis
            start = i * H * hd + h * hd
            assert torch.equal(part[:, h], x[..., start:start + hd])
    assert torch.equal(merge_heads(k), x[..., H * hd:2 * H * hd])
    (single,) = split_heads(x[..., :H * hd], 1, H)
    assert torch.equal(single, q)
    with pytest.raises(ValueError, match="a width of 35 does not split into 3 parts of 3 heads"):
        split_heads(torch.randn(B, T, 35), 3, 3)


def _backward_ops(split) -> list[str]:
    """The aten ops the backward pass of attention over ``split(x)`` runs, x (2, 6, 3 * 2 * 4)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(func.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    x = torch.randn(2, 6, 24, requires_grad=True)
    out = F.scaled_dot_product_attention(*split(x), is_causal=True)
    with Record() as record:
        out.backward(torch.ones_like(out))
    return record.ops


def test_split_heads_backward_copies_the_gradients_once():
    """Moving the parts axis first (the old layout) costs a clone after the stack; split_heads
    does not, and gives the same gradient. (Which aten ops autograd runs is PyTorch's business:
    pinned here for torch 2.13's CPU attention backward.)"""
    def permuted(x):
        return x.view(2, 6, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)

    old, new = _backward_ops(permuted), _backward_ops(lambda x: split_heads(x, 3, 2))
    assert "clone.default" in old and "clone.default" not in new
    assert new.count("stack.default") == 1
    grads = []
    for split in (permuted, lambda x: split_heads(x, 3, 2)):
        x = torch.randn(2, 6, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
        F.scaled_dot_product_attention(*split(x), is_causal=True).sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])
