"""The in-place attention path (no autograd) against the explicit one: same numbers, less memory.

``scaled_dot_product_attention`` computes the weights in one buffer when no gradient is needed.
Both paths run the same operations in the same order, so the tests ask for bit-identical outputs
and weights, not closeness.
"""

from __future__ import annotations

import pytest
import torch

from attnlab.attention import causal_mask, padding_mask, scaled_dot_product_attention
from attnlab.measure import peak_memory_bytes


def qkv(B=2, H=3, t_q=7, t_k=7, d=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, t_q, d, generator=g, dtype=dtype), torch.randn(B, H, t_k, d, generator=g, dtype=dtype),
            torch.randn(B, H, t_k, d + 2, generator=g, dtype=dtype))


def explicit(q, k, v, mask=None, *, is_causal=False):
    """The autograd path: inputs that require a gradient."""
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    out, w = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal)
    assert out.grad_fn is not None and w.grad_fn is not None
    return out.detach(), w.detach()


def in_place(q, k, v, mask=None, *, is_causal=False):
    with torch.no_grad():
        return scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal)


def pad_mask(B=2, T=7):
    real = torch.ones(B, T)
    real[0, 5:] = 0  # row 0: two pads at the end
    return padding_mask(real)  # (B, 1, 1, T)


def full_mask_with_empty_rows(B=2, H=3, T=7):
    g = torch.Generator().manual_seed(3)
    m = torch.rand(B, H, T, T, generator=g) > 0.5
    m[0, 1, 2] = False  # a query with no allowed key
    m[1, :, 4] = False
    return m


CASES = {
    "no mask": (dict(), None, False),
    "padding": (dict(), pad_mask(), False),
    "causal": (dict(), None, True),
    "causal + padding": (dict(), pad_mask(), True),
    "full mask, empty rows": (dict(), full_mask_with_empty_rows(), False),
    "0/1 integer mask": (dict(), full_mask_with_empty_rows().long(), False),
    "cached keys, causal": (dict(t_q=3, t_k=9), None, True),
    "cached keys, causal mask given": (dict(t_q=3, t_k=9), causal_mask(3, 9), False),
    "broadcast mask (T_q, T_k)": (dict(), causal_mask(7), False),
    "mask wider than q": (dict(B=1), full_mask_with_empty_rows(), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_in_place_equals_explicit(case):
    shape, mask, is_causal = CASES[case]
    q, k, v = qkv(**shape)
    out_ref, w_ref = explicit(q, k, v, mask, is_causal=is_causal)
    out, w = in_place(q, k, v, mask, is_causal=is_causal)
    assert w.grad_fn is None
    assert torch.equal(out, out_ref) and torch.equal(w, w_ref)
    assert not torch.isnan(w).any() and not torch.isnan(out).any()


def test_grad_mode_without_inputs_needing_one_is_in_place_too():
    q, k, v = qkv()
    out, w = scaled_dot_product_attention(q, k, v, pad_mask(), is_causal=True)  # grad mode on, no input needs it
    out_ref, w_ref = explicit(q, k, v, pad_mask(), is_causal=True)
    assert torch.equal(out, out_ref) and torch.equal(w, w_ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_are_identical(dtype):
    q, k, v = qkv(dtype=dtype)
    mask = full_mask_with_empty_rows()
    out_ref, w_ref = explicit(q, k, v, mask, is_causal=True)
    out, w = in_place(q, k, v, mask, is_causal=True)
    assert w.dtype == dtype and torch.equal(out, out_ref) and torch.equal(w, w_ref)


def test_fully_masked_rows_are_exact_zeros_and_allowed_rows_sum_to_one():
    q, k, v = qkv()
    mask = full_mask_with_empty_rows()
    out, w = in_place(q, k, v, mask)
    assert torch.equal(w[0, 1, 2], torch.zeros(7)) and torch.equal(out[0, 1, 2], torch.zeros(10))
    assert torch.equal(w[1, :, 4], torch.zeros(3, 7))
    assert torch.equal(w[~mask.expand_as(w)], torch.zeros(int((~mask).sum())))  # masked: exactly 0
    has_key = mask.any(-1)
    torch.testing.assert_close(w.sum(-1)[has_key], torch.ones(int(has_key.sum())))


def test_causal_queries_after_keys_is_an_error_on_both_paths():
    q, k, v = qkv(t_q=5, t_k=3)
    with pytest.raises(ValueError, match="t_q <= t_k"):
        in_place(q, k, v, is_causal=True)
    with pytest.raises(ValueError, match="t_q <= t_k"):
        explicit(q, k, v, is_causal=True)


def test_gradients_still_flow_on_the_explicit_path():
    q, k, v = (t.requires_grad_() for t in qkv())
    out, _ = scaled_dot_product_attention(q, k, v, full_mask_with_empty_rows(), is_causal=True)
    out.sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_autocast_keeps_the_explicit_path():
    """Autocast picks each op's dtype (on a GPU, softmax in float32); in-place ops would not follow it."""
    q, k, v = qkv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_ref, w_ref = explicit(q, k, v, is_causal=True)
        with torch.no_grad():
            out, w = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert w.grad_fn is None and w.dtype == w_ref.dtype and torch.equal(w, w_ref) and torch.equal(out, out_ref)


@pytest.mark.parametrize("is_causal", [False, True])
def test_peak_memory_is_one_weight_tensor(is_causal):
    """At T = 1,024 (8 heads, head width 32) the weights take 32 MiB; the in-place path peaks at one
    such tensor plus the output and the bool mask, where the explicit path holds two to four."""
    T, H, d = 1024, 8, 32
    q, k, v = (torch.randn(1, H, T, d) for _ in range(3))
    weights = H * T * T * 4
    out_and_mask = H * T * d * 4 + T * T  # the output, and the causal mask's bool tensor

    def run():
        with torch.no_grad():
            scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    peak = peak_memory_bytes(run)
    assert weights <= peak <= weights + out_and_mask + 2**20, peak / 2**20
