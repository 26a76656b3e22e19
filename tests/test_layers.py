"""Building blocks against references: nn.MultiheadAttention, a loop of heads, the course shapes."""

import pytest
import torch

from attnlab.attention import causal_mask, combine_masks, padding_mask
from attnlab.layers import (
    FFN,
    AttentionHead,
    AttentionResidual,
    KVCache,
    MultiHeadedAttention,
    SelfAttention,
    Transformer,
    TransformerBlock,
)
from attnlab.positional import RotaryEmbedding


# ---- course shapes -----------------------------------------------------------------------------
def test_attention_head_shapes():
    head = AttentionHead(16, 8)
    out, A = head(torch.randn(2, 5, 16))
    assert out.shape == (2, 5, 8) and A.shape == (2, 5, 5)
    assert head.W_Q.weight.shape == (8, 16)  # nn.Linear stores W^T: W_Q in R^{16 x 8}
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 5))


def test_mha_transformer_shapes():
    x = torch.randn(3, 10, 32)
    mha = MultiHeadedAttention(32, 4, 8)
    out, w = mha(x, need_weights=True)
    assert out.shape == (3, 10, 32) and w.shape == (3, 4, 10, 10)
    assert mha.W_O.weight.shape == (32, 4 * 8)
    assert FFN(32, 64)(x).shape == x.shape
    y, w = AttentionResidual(32, 8, 64, 4)(x, need_weights=True)
    assert y.shape == x.shape and w.shape == (3, 4, 10, 10)
    model = Transformer(32, 8, 64, 4, 3)
    y, atts = model(x, need_weights=True)
    assert y.shape == x.shape and len(atts) == 3 and all(a.shape == (3, 4, 10, 10) for a in atts)
    assert model(x)[1] is None


# ---- equality with references --------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_mha_matches_torch_multihead_attention(seed):
    g = torch.Generator().manual_seed(seed)
    heads = int(torch.randint(1, 5, (1,), generator=g))
    head_dim = int(torch.randint(1, 9, (1,), generator=g))
    B, T = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 13, (1,), generator=g))
    dim = heads * head_dim
    torch.manual_seed(seed)
    ours = MultiHeadedAttention(dim, heads, head_dim).eval()
    ref = ours.to_torch().eval()
    x = torch.randn(B, T, dim)
    input_mask = (torch.rand(B, T, generator=g) > 0.3).long()
    input_mask[:, 0] = 1
    for mask in (None, padding_mask(input_mask), combine_masks(causal_mask(T), padding_mask(input_mask))):
        # torch's key_padding_mask/attn_mask use True = *ignore*: the opposite of ours
        kpm = None if mask is None else ~input_mask.bool()
        am = None if mask is None or mask.dim() == 4 and mask.size(2) == 1 else ~causal_mask(T)
        expected, ref_w = ref(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=True,
                              average_attn_weights=False)
        fast, none = ours(x, mask)
        slow, w = ours(x, mask, need_weights=True)
        assert none is None
        torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(slow, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-5)


def test_vectorised_heads_equal_a_loop_of_attention_heads():
    dim, H, hd = 12, 3, 5
    mha = MultiHeadedAttention(dim, H, hd, bias=False)
    heads = [AttentionHead(dim, hd) for _ in range(H)]
    with torch.no_grad():
        wq, wk, wv = mha.qkv.weight.view(3, H, hd, dim).unbind(0)  # each (H, hd, dim)
        for h, head in enumerate(heads):
            head.W_Q.weight.copy_(wq[h])
            head.W_K.weight.copy_(wk[h])
            head.W_V.weight.copy_(wv[h])
    x = torch.randn(2, 7, dim)
    mask = causal_mask(7)
    outs, weights = zip(*(head(x, mask) for head in heads))
    expected = mha.W_O(torch.cat(outs, dim=-1))
    got, w = mha(x, mask, need_weights=True)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(w, torch.stack(weights, dim=1))


def test_fused_and_explicit_paths_agree_in_a_stack_with_masks():
    torch.manual_seed(0)
    model = Transformer(16, 4, 32, 4, 2).eval()
    x = torch.randn(2, 9, 16)
    input_mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    mask = combine_masks(causal_mask(9), padding_mask(input_mask))
    a, _ = model(x, mask)
    b, atts = model(x, mask, need_weights=True)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (atts[0][1, :, :, 5:] == 0).all()  # padding keys get no weight


# ---- behaviour -----------------------------------------------------------------------------------
def test_causal_stack_earlier_outputs_ignore_later_tokens():
    torch.manual_seed(0)
    model = Transformer(16, 8, 32, 2, 2).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    a, _ = model(x, is_causal=True)
    b, _ = model(y, is_causal=True)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("rotary", [False, True])
def test_kv_cache_equals_full_forward(rotary):
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=8) if rotary else None
    model = Transformer(16, 8, 32, 2, 3, rotary=rope).eval()
    x = torch.randn(2, 10, 16)
    full, _ = model(x, is_causal=True)
    cache = KVCache(3)
    parts = [model(x[:, :4], is_causal=True, cache=cache)[0]]  # a prompt of 4
    for t in range(4, 10):  # then one token at a time
        parts.append(model(x[:, t : t + 1], is_causal=True, cache=cache)[0])
    assert cache.length == 10
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    for model in (Transformer(16, 4, 32, 4, 2), TransformerBlock(dim=16, num_heads=2, mlp_dim=32)):
        x = torch.randn(2, 6, 16)
        out, _ = model(x)
        out.pow(2).mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
            assert torch.isfinite(p.grad).all(), name


def test_post_norm_block_and_self_attention():
    sa = SelfAttention(dim=8, num_heads=3)
    assert sa.qkv.weight.shape == (3 * 3 * 8, 8)  # W_{q,k,v} widened to d x (h*d)
    assert sa.W_O.weight.shape == (8, 3 * 8)
    block = TransformerBlock(dim=8, num_heads=3, mlp_dim=16).eval()
    x = torch.randn(2, 5, 8)
    y, no_weights = block(x)
    assert y.shape == x.shape and no_weights is None
    # post-norm: every output position is layer-normalised
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    y2, w = block(x, need_weights=True)
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)
    assert w.shape == (2, 3, 5, 5)


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    block = TransformerBlock(dim=8, num_heads=2, mlp_dim=16).eval()
    x = torch.randn(1, 4, 8)
    padded = torch.cat([x, torch.randn(1, 3, 8)], dim=1)
    mask = padding_mask(torch.tensor([[1, 1, 1, 1, 0, 0, 0]]))
    torch.testing.assert_close(block(padded, mask)[0][:, :4], block(x)[0], atol=1e-5, rtol=1e-5)


def test_pre_norm_block_is_its_formula():
    """x = x + attn(norm1(x)); x = x + mlp(norm2(x)), with mlp = fc2(gelu(fc1(.)))."""
    torch.manual_seed(0)
    block = AttentionResidual(16, 4, 32, 4).eval()
    x = torch.randn(2, 6, 16)
    h = x + block.attn(block.norm1(x))[0]
    mlp = block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(h))))
    torch.testing.assert_close(block(x)[0], h + mlp)


def test_post_norm_block_is_its_formula():
    """x = norm1(x + attn(x)); x = norm2(x + mlp(x))."""
    torch.manual_seed(0)
    block = TransformerBlock(dim=8, num_heads=2, mlp_dim=16).eval()
    x = torch.randn(2, 5, 8)
    h = block.norm1(x + block.attn(x)[0])
    torch.testing.assert_close(block(x)[0], block.norm2(h + block.mlp(h)))


def test_attention_head_value_width_and_the_course_attention():
    from attnlab.attention import scaled_dot_product_attention
    from attnlab.models.text import Attention

    torch.manual_seed(0)
    head = AttentionHead(16, 8, value_dim=16)
    x = torch.randn(2, 5, 16)
    out, A = head(x)
    ref, ref_A = scaled_dot_product_attention(x @ head.W_Q.weight.T, x @ head.W_K.weight.T, x @ head.W_V.weight.T)
    assert out.shape == (2, 5, 16)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(A, ref_A)
    course = Attention(16, 8)  # the course's name: the same class, the course's signature
    assert isinstance(course, AttentionHead)
    assert course.W_V.weight.shape == (16, 16) and course.W_Q.weight.shape == (8, 16)


def test_cache_buffers_grow_for_a_step_that_writes_them_itself():
    cache = KVCache(1, capacity=4).layers[0]
    with pytest.raises(ValueError, match="the cache is empty"):
        cache.buffers(1)
    k = torch.randn(1, 2, 4, 3)
    cache.append(k, k + 1)
    first, _ = cache.buffers(0)
    keys, values = cache.buffers(1)  # full: doubled, the 4 positions kept
    assert keys.shape == (1, 2, 8, 3) and keys.data_ptr() != first.data_ptr()
    assert torch.equal(keys[:, :, :4], k) and torch.equal(values[:, :, :4], k + 1) and cache.length == 4
