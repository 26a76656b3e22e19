"""DecodeStep: the same numbers as DialogueGPT's module forward for one cached position, bit for bit
(both on PyTorch's own kernels: the step switches oneDNN off)."""

import contextlib
import math

import pytest
import torch
from gpt_fixtures import one_thread, small_gpt  # noqa: F401  (one_thread: an autouse fixture)

from attnlab.layers import KVCache
from attnlab.models.gpt_step import DecodeStep


@contextlib.contextmanager
def pytorch_kernels():
    """oneDNN off, as DecodeStep runs (``mkldnn.flags`` would also touch TF32 and warn)."""
    old = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = old


SHAPES = [{}, {"bias": False, "tie_weights": False, "activation": "gelu_tanh", "norm_eps": 1e-6}]


@pytest.mark.parametrize("backend", ["python", "auto"])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equal_the_module_forward_and_fill_the_same_cache(rows, shape, backend):
    # One row goes through as a vector (addmv, the weight times the vector), several as a batch:
    # both must give exactly the module path's logits and cached keys and values, in Python and in
    # what runs by default (C++ for one row where it can be built).
    model = small_gpt(**shape)
    prompt = torch.randint(3, 50, (rows, 5))
    new = torch.randint(3, 50, (rows, 6))
    with torch.inference_mode():
        ours, theirs = KVCache(2, capacity=16), KVCache(2, capacity=16)
        model(prompt, cache=ours, last_only=True)
        model(prompt, cache=theirs, last_only=True)
        step = DecodeStep(model, backend=backend)
        for i in range(new.size(1)):
            got = step(new[:, i:i + 1], ours)
            with pytorch_kernels():  # the step's kernels
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
            with pytorch_kernels():
                want = model(new[:, i:i + 1], keys[:, : 7 + i], cache=theirs, positions=pos)[:, -1]
            assert torch.equal(got, want)
        alone = model(torch.cat([ids[:1, 3:], new[:1]], 1))[0, 2:]  # row 0 without its padding
    # (the padded row's last logits are what its tokens alone give, up to the kernels' rounding)
    torch.testing.assert_close(got[0], alone[-1], atol=1e-5, rtol=1e-5)


def test_onednn_is_switched_off_for_the_step_only_and_restored_after_an_error():
    model = small_gpt()
    step = DecodeStep(model, backend="python")
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


# --------------------------------------------------------------------------- the C++ one-row step


@pytest.mark.needs_compiler
@pytest.mark.parametrize("shape", SHAPES)
def test_the_cpp_step_gives_the_python_steps_numbers_bit_for_bit(shape):
    # The same ATen calls in the same order: logits and cache identical to the Python step's, for one
    # row (C++) and for a batch (which stays in Python); LayerNorms without biases get zeros.
    model = small_gpt(seed=4, **shape)
    with torch.inference_mode():
        for rows in (1, 2):
            prompt = torch.randint(3, 50, (rows, 4))
            caches = {b: KVCache(2, capacity=16) for b in ("python", "cpp")}
            steps = {b: DecodeStep(model, backend=b) for b in caches}
            assert steps["cpp"]._native is not None and steps["python"]._native is None
            for cache in caches.values():
                model(prompt, cache=cache, last_only=True)
            for i in range(8):
                nxt = torch.randint(3, 50, (rows, 1))
                got, want = (steps[b](nxt, caches[b]) for b in ("cpp", "python"))
                assert torch.equal(got, want), (rows, i, (got - want).abs().max())
            for a, b in zip(caches["cpp"].layers, caches["python"].layers):
                assert a.length == b.length == 12 and torch.equal(a.k, b.k) and torch.equal(a.v, b.v)


@pytest.mark.needs_compiler
def test_generate_with_attnlab_decode_cpp_gives_the_same_tokens(monkeypatch):
    from attnlab.models.gpt import generate

    model = small_gpt(seed=5)
    prompt = torch.randint(3, 50, (3,)).tolist()
    python = [generate(model, prompt, 40), generate(model, prompt, 20, temperature=1.0, top_k=10, seed=3)]
    monkeypatch.setenv("ATTNLAB_DECODE", "cpp")
    cpp = [generate(model, prompt, 40), generate(model, prompt, 20, temperature=1.0, top_k=10, seed=3)]
    assert cpp == python  # 40 greedy tokens slide the context-16 window twice: the cache is rebuilt in between


def test_a_bad_attnlab_decode_value_is_one_clear_error(monkeypatch):
    from attnlab.errors import AttnlabError
    from attnlab.models.gpt_step import decode_backend

    assert decode_backend({}) == "auto" and decode_backend({"ATTNLAB_DECODE": " CPP "}) == "cpp"
    assert decode_backend({"ATTNLAB_DECODE": "Python"}) == "python"
    monkeypatch.setenv("ATTNLAB_DECODE", "fast")
    with pytest.raises(AttnlabError, match=r"ATTNLAB_DECODE='fast' is not one of auto, python, cpp"):
        DecodeStep(small_gpt())


@pytest.mark.needs_compiler
def test_the_cpp_pick_is_the_python_greedy_pick_of_the_same_step():
    # generate's one-row greedy path in C++: the step, the banned ids and the max in one call; the
    # same id (and logit) as the Python step's logits through gpt.py's _greedy, and the same cache.
    from attnlab.models.gpt import _greedy

    model = small_gpt(seed=7)
    banned = torch.tensor([0, 1, 5])
    with torch.inference_mode():
        caches = {b: KVCache(2, capacity=16) for b in ("python", "cpp")}
        for cache in caches.values():
            model(torch.tensor([[3, 4]]), cache=cache, last_only=True)
        python, cpp = DecodeStep(model, backend="python"), DecodeStep(model, backend="cpp")
        with pytest.raises(ValueError, match="pick runs the C\\+\\+ step"):
            python.pick(3, caches["python"], banned)
        token = 9
        for _ in range(10):
            logits = python(torch.tensor([[token]]), caches["python"])
            want, _ = _greedy(logits.clone(), banned)
            top = logits.clone().index_fill_(-1, banned, float("-inf")).max().item()
            assert cpp.pick(token, caches["cpp"], banned) == (want[0], top)
            token = want[0]
        for a, b in zip(caches["cpp"].layers, caches["python"].layers):
            assert a.length == b.length == 12 and torch.equal(a.k, b.k) and torch.equal(a.v, b.v)
        # a banned id that is the most likely one is passed over; a NaN logit is reported
        model.head.weight[5] = 100 * model.norm(model.tok.weight[5]).sign()

        def primed():
            cache = KVCache(2, capacity=16)
            model(torch.tensor([[3, 4]]), cache=cache, last_only=True)
            return cache

        logits = python(torch.tensor([[9]]), primed())[0]
        picked, top = cpp.pick(9, primed(), banned)
        assert logits.argmax() == 5 and picked != 5
        assert (picked, top) == (int(logits.index_fill(0, banned, float("-inf")).argmax()), logits[picked].item())
        model.head.weight[7] = float("nan")
        assert math.isnan(cpp.pick(9, primed(), banned)[1])  # generate then says the weights are broken
