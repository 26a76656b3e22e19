"""DecodeStep: the same numbers as DialogueGPT's module forward for one cached position, bit for bit
(both on PyTorch's own kernels: the step switches oneDNN off)."""

import pytest
import torch

from attnlab.layers import KVCache
from attnlab.models.gpt import DialogueGPT, GPTConfig
from attnlab.models.gpt_step import DecodeStep


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=50, context=16, dim=32, num_heads=4, num_layers=2, mlp_dim=64, dropout=0.0)
    return DialogueGPT(GPTConfig(**{**cfg, **kw})).eval()


SHAPES = [{}, {"bias": False, "tie_weights": False, "activation": "gelu_tanh", "norm_eps": 1e-6}]


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equal_the_module_forward_and_fill_the_same_cache(rows, shape):
    # One row goes through as a vector (addmv, the weight times the vector), several as a batch:
    # both must give exactly the module path's logits and cached keys and values.
    model = small_gpt(**shape)
    prompt = torch.randint(3, 50, (rows, 5))
    new = torch.randint(3, 50, (rows, 6))
    with torch.inference_mode():
        ours, theirs = KVCache(2, capacity=16), KVCache(2, capacity=16)
        model(prompt, cache=ours, last_only=True)
        model(prompt, cache=theirs, last_only=True)
        step = DecodeStep(model)
        for i in range(new.size(1)):
            got = step(new[:, i:i + 1], ours)
            with torch.backends.mkldnn.flags(enabled=False):  # the step's kernels
                want = model(new[:, i:i + 1], cache=theirs)[:, -1]
            assert got.shape == (rows, 50)
            assert torch.equal(got, want), (i, (got - want).abs().max())
    for a, b in zip(ours.layers, theirs.layers):
        assert a.length == b.length == 11
        assert torch.equal(a.k, b.k) and torch.equal(a.v, b.v)


def test_left_padded_rows_with_a_key_mask_and_their_own_positions():
    model = small_gpt(seed=2)
    ids = torch.randint(3, 50, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, :3] = False  # row 0: 3 pads, then 3 tokens at positions 0..2
    positions = torch.stack([torch.tensor([0, 0, 0, 0, 1, 2]), torch.arange(6)])
    keys = torch.cat([mask, torch.ones(2, 4, dtype=torch.bool)], 1)  # (2, 10)
    new = torch.randint(3, 50, (2, 4))
    with torch.inference_mode():
        ours, theirs = KVCache(2, capacity=16), KVCache(2, capacity=16)
        model(ids, mask, cache=ours, positions=positions, last_only=True)
        model(ids, mask, cache=theirs, positions=positions, last_only=True)
        step = DecodeStep(model)
        for i in range(4):
            pos = torch.tensor([[3 + i], [6 + i]])
            got = step(new[:, i:i + 1], ours, keys[:, : 7 + i], pos)
            with torch.backends.mkldnn.flags(enabled=False):
                want = model(new[:, i:i + 1], keys[:, : 7 + i], cache=theirs, positions=pos)[:, -1]
            assert torch.equal(got, want)
        alone = model(torch.cat([ids[:1, 3:], new[:1]], 1))[0, 2:]  # row 0 without its padding
    # (the padded row's last logits are what its tokens alone give, up to the kernels' rounding)
    torch.testing.assert_close(got[0], alone[-1], atol=1e-5, rtol=1e-5)


def test_onednn_is_switched_off_for_the_step_only_and_restored_after_an_error():
    model = small_gpt()
    step = DecodeStep(model)
    seen = []
    real = step._step

    def spy(*args):
        seen.append(torch.backends.mkldnn.enabled)
        return real(*args)

    step._step = spy
    before = torch.backends.mkldnn.enabled
    with torch.inference_mode():
        cache = KVCache(2, capacity=16)
        model(torch.tensor([[5, 6]]), cache=cache)
        step(torch.tensor([[7]]), cache)
        full = KVCache(2, capacity=16)
        model(torch.randint(3, 50, (1, 16)), cache=full)
        with pytest.raises(ValueError, match="the model's context is 16"):
            step(torch.tensor([[7]]), full)  # a 17th position: no room
    assert seen == [False, False] and torch.backends.mkldnn.enabled == before


def test_rotary_layers_are_refused():
    model = small_gpt()
    model.transformer.layers[0].attn.rotary = object()
    with pytest.raises(ValueError, match="rotary"):
        DecodeStep(model)
