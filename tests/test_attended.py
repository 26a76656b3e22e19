"""One attention interface: every model's ``attend`` gives its forward output and weights that
reproduce, by hand, what each attention layer computed on the fused path."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.attended import Attended
from attnlab.attention import scaled_dot_product_attention
from attnlab.layers import AttentionHead, MultiHeadedAttention
from attnlab.models.gpt import DialogueGPT, GPTConfig
from attnlab.models.text import AttentionClassifier, TextClassificationTransformer
from attnlab.models.toy import ToyClassifier, ToyModelConfig
from attnlab.models.vit import VisionTransformer, ViTConfig


def gpt():
    return DialogueGPT(GPTConfig(vocab_size=30, context=16, dim=16, num_heads=2, num_layers=2, mlp_dim=32)), (
        torch.randint(3, 30, (2, 9)),)


def toy():
    tokens = torch.randint(1, 9, (3, 10))
    tokens[1, 6:] = 0  # padding at the end of row 1
    return ToyClassifier(ToyModelConfig(num_layers=2)), (tokens,)


def text_transformer():
    ids, lengths = torch.randint(2, 40, (3, 8)), torch.tensor([8, 5, 2])
    return TextClassificationTransformer(vocab_size=40, max_len=8, dim=16, num_heads=2, mlp_dim=32, num_layers=2,
                                         dropout=0.0), (ids, lengths)


def text_attention():
    ids, lengths = torch.randint(2, 40, (3, 8)), torch.tensor([8, 5, 2])
    return AttentionClassifier(embeddings=torch.randn(40, 6), query_key_size=4), (ids, lengths)


def vit():
    cfg = ViTConfig(image_size=16, patch_size=4, dim=16, num_layers=2, num_heads=2, head_dim=8, mlp_dim=32)
    return VisionTransformer(cfg), (torch.randn(2, 3, 16, 16),)


MODELS = {"gpt": gpt, "toy": toy, "text-transformer": text_transformer, "text-attention": text_attention, "vit": vit}


def by_hand(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None, causal: bool):
    """(weights (B, H, T, T), values (B, H, T, hd)) of one attention layer, from its own weights."""
    if isinstance(module, MultiHeadedAttention):
        B, T, _ = x.shape
        q, k, v = module.qkv(x).view(B, T, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)
    else:  # a lone AttentionHead: one head
        q, k, v = (w(x)[:, None] for w in (module.W_Q, module.W_K, module.W_V))  # (B, 1, T, d)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))  # (B, H, T, T)
    allowed = torch.ones_like(scores, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & (mask[:, None] if mask.dim() == 3 else mask).bool()
    if causal:
        allowed = allowed & torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, -math.inf), -1), v


def layers_of(model):
    return [m for m in model.modules() if isinstance(m, (MultiHeadedAttention, AttentionHead))]


@pytest.mark.parametrize("name", list(MODELS))
def test_attend_weights_are_each_layers_own_and_reproduce_the_fused_path(name):
    torch.manual_seed(0)
    model, inputs = MODELS[name]()
    model.eval()
    calls: list[tuple] = []

    def record(module, args, kwargs, output):
        mask = args[1] if len(args) > 1 else kwargs.get("attn_mask")
        calls.append((module, args[0], mask, kwargs.get("is_causal", False), output[0]))

    hooks = [m.register_forward_hook(record, with_kwargs=True) for m in layers_of(model)]
    with torch.no_grad():
        fused = model(*inputs)  # need_weights=False: PyTorch's fused kernel where a layer has one
        fused_calls, calls = calls, []
        attended = model.attend(*inputs)
    for h in hooks:
        h.remove()
    assert isinstance(attended, Attended)
    torch.testing.assert_close(attended.output, fused, rtol=1e-5, atol=1e-5)
    assert len(attended.attentions) == len(fused_calls) == len(layers_of(model)) >= 1
    for weights, (module, x, mask, causal, out) in zip(attended.attentions, fused_calls):
        expected, v = by_hand(module, x, mask, causal)
        torch.testing.assert_close(weights, expected, rtol=1e-5, atol=1e-6)
        mixed = weights @ v  # (B, H, T, hd): what the fused kernel mixed
        if isinstance(module, MultiHeadedAttention):
            mixed = module.W_O(mixed.transpose(1, 2).flatten(2))  # heads concatenated, then W_O
        else:
            mixed = mixed[:, 0]
        torch.testing.assert_close(mixed, out, rtol=1e-5, atol=1e-5)  # the fused path's layer output


def test_received_is_the_mean_column_over_the_real_queries_by_hand():
    w = torch.tensor([[[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4]],
                       [[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8]]]])  # (1, 2, 3, 3)
    a = Attended(torch.zeros(1, 2), [torch.zeros_like(w), w], lengths=torch.tensor([2]))
    # two real tokens: heads averaged -> [[0.75, 0.25], [0.4, 0.6]], column means over the 2 queries
    assert a.received().tolist() == pytest.approx([0.575, 0.425])
    assert a.received(layer=0).tolist() == [0.0, 0.0]
    assert Attended(torch.zeros(1, 2), [w]).received().tolist() == pytest.approx(
        [(0.75 + 0.4 + 0.2) / 3, (0.25 + 0.6 + 0.2) / 3, 0.6 / 3])
    assert a.select([1], [1]).tolist() == [[w[0, 1].tolist()]]


def test_cross_attention_fits_the_same_shape():
    """A decoder's 3 queries reading an encoder's 5 keys: (B, H, T, S) with S != T."""
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 5, 8)
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, S)
    _, w = scaled_dot_product_attention(q, k, k, keep)
    a = Attended(torch.zeros(2, 3, 10), [w, w])
    assert a.num_layers == 2 and a.num_heads == 4 and a.select([0, 1], [0, 3], row=1).shape == (2, 2, 3, 5)
    received = a.received(row=1)  # every key of the source, from the 3 queries
    torch.testing.assert_close(received, w[1].mean(0).mean(0))
    assert received.shape == (5,) and received[3:].tolist() == [0.0, 0.0]  # masked source keys get nothing
