"""FlatAdamW: torch's AdamW bit for bit (weights and state), in a handful of calls per group; every
test runs with torch's step on the flat tensors and with the C++ one (``ATTNLAB_ADAMW``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from attnlab import native
from attnlab.engine import flat_adamw
from attnlab.engine.flat_adamw import FlatAdamW, shared_parameters
from attnlab.engine.schedule import make_optimizer, param_groups
from attnlab.models.gpt import GPTConfig, random_gpt


@pytest.fixture(autouse=True, params=["torch", "cpp"])
def adamw_backend(request, monkeypatch):
    if request.param == "cpp" and not native.can_build_native():
        pytest.skip("the C++ AdamW step needs a C++ compiler, ninja and Python's headers")
    monkeypatch.setenv("ATTNLAB_ADAMW", request.param)
    return request.param


def _gpt():
    # tied output layer, biases, two groups (decayed matrices; norms, biases and tables)
    return random_gpt(GPTConfig(vocab_size=37, context=16, dim=32, num_heads=4, num_layers=2, mlp_dim=64,
                                dropout=0.0, bias=True))


def _torch_adamw(model):
    return torch.optim.AdamW(param_groups(model, 0.1), lr=1e-2, betas=(0.9, 0.95))


def _train(model, opt, steps, seed=0, drop=None):
    """``steps`` steps of forward, backward, clipping at 0.5 and AdamW on random batches;
    ``drop(model)`` may remove gradients before the step."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = (torch.randint(0, 37, (3, 16), generator=gen) for _ in range(2))
        logits = model(x)
        F.cross_entropy(logits.view(-1, 37), y.view(-1)).backward()
        if drop is not None:
            drop(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad(set_to_none=True)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa["state"][k][name], sb["state"][k][name]), (k, name)


def _pair():
    ref = _gpt()
    ours = copy.deepcopy(ref)
    return ref, _torch_adamw(ref), ours, make_optimizer(ours, 1e-2, 0.1)


def _assert_same(ref, ours):
    for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
        assert torch.equal(a, b), name


def test_bit_identical_to_torch_adamw():
    ref, ref_opt, ours, opt = _pair()
    assert isinstance(opt, FlatAdamW) and opt.flat
    _train(ref, ref_opt, 12)
    _train(ours, opt, 12)
    _assert_same(ref, ours)
    _same_state(ref_opt, opt)
    assert opt.flat
    assert not torch.equal(ref.tok.weight, _gpt().tok.weight)  # it did train


def test_parameters_live_in_one_buffer_per_group_and_a_tied_weight_keeps_its_own():
    model = _gpt()
    assert [p for p in shared_parameters(model)] == [model.tok.weight]  # also the output layer's
    opt = make_optimizer(model, 1e-2, 0.1)
    assert model.head.weight is model.tok.weight
    for group in opt.param_groups:
        storages = {p.untyped_storage().data_ptr() for p in group["params"] if p is not model.tok.weight}
        assert len(storages) == 1
    assert model.tok.weight.untyped_storage().nbytes() == model.tok.weight.numel() * 4


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def _calls_per_step(model, opt):
    _train(model, opt, 1)  # states exist
    logits = model(torch.zeros(1, 16, dtype=torch.long))
    logits.sum().backward()
    with _Count() as count:
        opt.step()
    return count.calls


def test_a_step_makes_a_handful_of_calls_per_group(adamw_backend):
    ref, ref_opt, ours, opt = _pair()
    tensors = sum(len(g["params"]) for g in ref_opt.param_groups)
    torch_calls, flat_calls = _calls_per_step(ref, ref_opt), _calls_per_step(ours, opt)
    assert tensors == 28 and torch_calls >= 8 * tensors  # about ten calls per tensor
    # torch's step: per group one call gathers the gradients; AdamW then makes at most ten calls
    # per tensor it steps: the two flat ones and the tied weight, which keeps its own storage. The
    # C++ step: the step count's increment and its value, per tensor (and the profiler's two marks)
    assert flat_calls <= (2 + 10 * 3 if adamw_backend == "torch" else 2 + 2 * 3) and flat_calls * 8 < torch_calls


@pytest.mark.parametrize("first", ["flat", "torch"])
def test_state_dicts_are_interchangeable_with_torch(first):
    """A checkpoint of either optimizer resumes in the other, and the run goes on identically."""
    ref, ref_opt, ours, opt = _pair()
    _train(ref, ref_opt, 4)
    _train(ours, opt, 4)
    saved = (opt if first == "flat" else ref_opt).state_dict()
    saved = copy.deepcopy(saved)
    ref2, ours2 = copy.deepcopy(ref), copy.deepcopy(ours)
    ref_opt2, opt2 = _torch_adamw(ref2), make_optimizer(ours2, 1e-2, 0.1)
    ref_opt2.load_state_dict(copy.deepcopy(saved))
    opt2.load_state_dict(copy.deepcopy(saved))
    assert opt2.flat
    _train(ref2, ref_opt2, 4, seed=1)
    _train(ours2, opt2, 4, seed=1)
    _assert_same(ref2, ours2)
    _same_state(ref_opt2, opt2)
    steps = {int(s["step"]) for s in opt2.state_dict()["state"].values()}
    assert steps == {8}
    # each parameter has a step of its own in the saved layout, as torch's AdamW expects
    state = opt2.state_dict()["state"]
    assert len({id(s["step"]) for s in state.values()}) == len(state)


def test_a_parameter_without_gradient_falls_back_to_torch_semantics():
    """torch skips a parameter that got no gradient; so, from then on, does FlatAdamW."""
    ref, ref_opt, ours, opt = _pair()
    calls = {"n": 0}

    def drop(model):
        calls["n"] += 1
        if calls["n"] % 2 == 0:  # every other step, the first layer's MLP gets no gradient
            model.transformer.layers[0].mlp.fc1.weight.grad = None

    _train(ref, ref_opt, 6, drop=drop)
    calls["n"] = 0
    _train(ours, opt, 6, drop=drop)
    assert not opt.flat
    _assert_same(ref, ours)
    _same_state(ref_opt, opt)
    steps = {int(s["step"]) for s in opt.state_dict()["state"].values()}
    assert steps == {6, 3}  # the skipped weight counted its own steps


def test_a_parameter_moved_elsewhere_falls_back():
    ref, ref_opt, ours, opt = _pair()
    _train(ref, ref_opt, 2)
    _train(ours, opt, 2)
    for model in (ref, ours):
        w = model.transformer.layers[1].mlp.fc2.weight
        w.data = w.data.clone()  # new storage, as .to() would give it
    _train(ref, ref_opt, 3, seed=2)
    _train(ours, opt, 3, seed=2)
    assert not opt.flat
    _assert_same(ref, ours)


def test_release_gives_each_parameter_its_own_storage_and_training_goes_on_the_same():
    ref, ref_opt, ours, opt = _pair()
    _train(ref, ref_opt, 3)
    _train(ours, opt, 3)
    opt.release()
    assert not opt.flat
    for p in ours.parameters():
        assert p.untyped_storage().nbytes() == p.numel() * 4
    _train(ref, ref_opt, 3, seed=3)
    _train(ours, opt, 3, seed=3)
    _assert_same(ref, ours)
    _same_state(ref_opt, opt)


def test_a_channels_last_weight_keeps_its_layout_and_its_own_storage():
    def model():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3), torch.nn.Flatten(),
                                  torch.nn.Linear(4 * 4 * 4, 2))
        net[0].weight.data = net[0].weight.data.contiguous(memory_format=torch.channels_last)
        return net

    ref, ours = model(), model()
    ref_opt = torch.optim.AdamW(param_groups(ref, 0.1), lr=1e-2)
    opt = make_optimizer(ours, 1e-2, 0.1, beta2=0.999)
    assert opt.flat and ours[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert ours[0].weight.untyped_storage().nbytes() == ours[0].weight.numel() * 4  # its own
    assert ours[1].weight.untyped_storage().nbytes() > ours[1].weight.numel() * 4  # in the group's buffer
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.randn(2, 3, 8, 8, generator=gen)
        for net, o in ((ref, ref_opt), (ours, opt)):
            net(x).square().mean().backward()
            o.step()
            o.zero_grad(set_to_none=True)
    _assert_same(ref, ours)


def test_groups_of_large_tensors_stay_per_parameter(monkeypatch, adamw_backend):
    monkeypatch.setattr(flat_adamw, "FLAT_MEAN_NUMEL", 4)
    ref, ref_opt, ours, opt = _pair()
    assert not opt.flat
    _train(ref, ref_opt, 3)
    _train(ours, opt, 3)
    _assert_same(ref, ours)
    _same_state(ref_opt, opt)
    # torch's step: about ten calls per tensor; the C++ one: the step count's increment and value
    calls = _calls_per_step(ours, opt)
    assert calls >= 8 * 28 if adamw_backend == "torch" else calls <= 2 + 2 * 28


def test_settings_the_flat_step_does_not_reproduce_are_left_to_torch():
    model = _gpt()
    opt = FlatAdamW(param_groups(model, 0.1), lr=1e-2, amsgrad=True)
    assert not opt.flat
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(storages) == sum(1 for _ in model.parameters())  # nothing was moved


def test_tensors_the_c_step_cannot_take_never_build_it(monkeypatch):
    # float64 stands in for a GPU's tensors (the C++ step takes float32 on the CPU): the flat step
    # runs torch's, bit for bit, without building or loading the kernel (a GPU run once spent 10 s
    # compiling it for nothing)
    def refuse(*args, **kwargs):
        raise AssertionError("the C++ AdamW step was asked for tensors it cannot step")

    monkeypatch.setattr(flat_adamw.adamw_kernel, "kernel", refuse)
    ref = _gpt().double()
    ours = copy.deepcopy(ref)
    ref_opt, our_opt = _torch_adamw(ref), make_optimizer(ours, 1e-2, 0.1)
    assert our_opt.flat
    _train(ref, ref_opt, 3)
    _train(ours, our_opt, 3)
    _assert_same(ref, ours)
