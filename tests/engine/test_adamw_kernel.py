"""The one-pass C++ AdamW step (:mod:`attnlab.engine.adamw_kernel`): bit for bit torch's
single-tensor AdamW, its self-check, and the ``ATTNLAB_ADAMW`` choice."""

import ctypes

import pytest
import torch

from attnlab import native
from attnlab.engine import adamw_kernel
from attnlab.engine.adamw_kernel import adamw_step, reproduces_torch, torch_adamw
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def kernel():
    module, reason = adamw_kernel.KERNEL.built_or_reason()
    assert module is not None, reason
    return module


def torch_step(state, grad, **kw):
    torch_adamw([state[0]], [grad], [state[1]], [state[2]], [state[3]], foreach=False, **kw)


def fresh(start):
    n = start.numel()
    return [start.clone(), torch.zeros(n), torch.zeros(n), torch.tensor(0.0)]


def assert_identical(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)


@pytest.mark.needs_compiler
@pytest.mark.parametrize("cuts", [[1], [5], [2047], [2048, 1], [1000, 31, 70_000], [100_003], [65_536, 65_536, 7]])
@pytest.mark.parametrize("kw", [dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, eps=1e-8),
                                dict(lr=3e-2, beta1=0.2, beta2=0.5, weight_decay=0.0, eps=1e-6)])
def test_identical_to_torchs_step_in_every_bit(kernel, cuts, kw):
    # sizes below one block, across blocks and threads (32,768 elements each at least); a gradient
    # in pieces; lerp's two forms (1 - beta1 = 0.1 and 0.8); no weight decay
    n = sum(cuts)
    gen = torch.Generator().manual_seed(n)
    start = torch.randn(n, generator=gen)
    ours, theirs = fresh(start), fresh(start)
    for scale in (1e-4, 1.0, 1e4, 1.0):
        grad = torch.randn(n, generator=gen) * scale
        pieces = list(grad.split(cuts))
        adamw_step(kernel, *ours[:1], pieces, *ours[1:], **kw)
        torch_step(theirs, grad, **kw)
        assert_identical(ours, theirs)
    assert not torch.equal(ours[0], start)


@pytest.mark.needs_compiler
def test_nan_and_infinity_go_where_torchs_go(kernel):
    start = torch.randn(64)
    grad = torch.randn(64)
    grad[3], grad[10], grad[20] = float("nan"), float("inf"), -float("inf")
    ours, theirs = fresh(start), fresh(start)
    kw = dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, eps=1e-8)
    adamw_step(kernel, ours[0], [grad], *ours[1:], **kw)
    torch_step(theirs, grad, **kw)
    assert_identical(ours, theirs)
    assert ours[0].isnan().sum() == 3


@pytest.mark.needs_compiler
def test_the_same_bits_on_one_thread_or_two(kernel):
    gen = torch.Generator().manual_seed(1)
    start, grad = torch.randn(200_000, generator=gen), torch.randn(200_000, generator=gen)
    before = torch.get_num_threads()
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        state = fresh(start)
        adamw_step(kernel, state[0], [grad], *state[1:], lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, eps=1e-8)
        results.append(state)
    torch.set_num_threads(before)
    assert_identical(*results)


@pytest.mark.needs_compiler
def test_tensors_of_different_sizes_are_refused_before_any_memory_is_touched(kernel):
    state = fresh(torch.ones(10))
    kw = dict(lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8)
    with pytest.raises(ValueError, match=r"pieces \(9\) must hold as many elements as the parameter \(10\)"):
        adamw_step(kernel, state[0], [torch.ones(4), torch.ones(5)], *state[1:], **kw)
    with pytest.raises(ValueError, match=r"the moments \(10, 8\)"):
        adamw_step(kernel, state[0], [torch.ones(10)], state[1], torch.zeros(8), state[3], **kw)
    assert torch.equal(state[0], torch.ones(10)) and state[3].item() == 0  # untouched, not counted


@pytest.mark.needs_compiler
def test_in_place_updates_count_as_such_for_autograd(kernel):
    # a graph that saved a weight the step then changed fails its backward, as after torch's step
    w = torch.randn(8, requires_grad=True)
    loss = (w * w).sum()
    state = fresh(w.detach())
    with torch.no_grad():
        adamw_step(kernel, w, [torch.ones(8)], *state[1:], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.needs_compiler
def test_the_self_check_passes_here_and_catches_a_step_that_is_one_bit_off(kernel):
    assert reproduces_torch(kernel)

    class OneBitOff:
        def step(self, param, *args):
            kernel.step(param, *args)
            ctypes.c_uint32.from_address(param).value ^= 1  # the first weight's lowest bit

    assert not reproduces_torch(OneBitOff())


def test_the_choice_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("ATTNLAB_ADAMW", "fast")
    with pytest.raises(AttnlabError, match="ATTNLAB_ADAMW='fast' is not one of auto, torch, cpp"):
        adamw_kernel.kernel()
    monkeypatch.setenv("ATTNLAB_ADAMW", "torch")
    assert adamw_kernel.kernel() is None


class _Wrong:
    def step(self, *args):  # no step at all
        pass


def test_a_kernel_that_does_not_reproduce_torch_is_not_used(monkeypatch, capsys):
    wrong = _Wrong()
    monkeypatch.setattr(adamw_kernel, "_checked", {})
    monkeypatch.setattr(adamw_kernel.KERNEL, "auto", lambda: wrong)
    monkeypatch.setattr(adamw_kernel.KERNEL, "required", lambda choice: wrong)
    assert adamw_kernel.kernel("auto") is None
    assert capsys.readouterr().err == ("attnlab: warning: the C++ AdamW step does not reproduce torch's bit for bit on "
                                       "this machine; using torch's (ATTNLAB_ADAMW=torch skips the attempt)\n")
    assert adamw_kernel.kernel("auto") is None and capsys.readouterr().err == ""  # said once
    with pytest.raises(AttnlabError, match="ATTNLAB_ADAMW=cpp: the C.. AdamW step does not reproduce torch's bit for "
                                           "bit on this machine; set ATTNLAB_ADAMW=torch"):
        adamw_kernel.kernel("cpp")


def test_without_a_compiler_auto_is_torchs_step_and_cpp_an_error(monkeypatch):
    monkeypatch.setattr(native, "can_build_native", lambda: False)
    build = native.NativeBuild(adamw_kernel.KERNEL.source, "attnlab_adamw", "the C++ AdamW step",
                               "ATTNLAB_ADAMW=torch", instead="torch's AdamW step", fallback="using torch's")
    build._outcome = (None, "no compiler")
    monkeypatch.setattr(adamw_kernel, "KERNEL", build)
    assert adamw_kernel.kernel("auto") is None
    with pytest.raises(AttnlabError, match=r"ATTNLAB_ADAMW=cpp could not build the C\+\+ AdamW step \(no compiler\)"):
        adamw_kernel.kernel("cpp")


def test_served_only_for_contiguous_float32_cpu_tensors():
    assert adamw_kernel.served([torch.zeros(3), torch.zeros(2, 2)])
    assert not adamw_kernel.served([torch.zeros(3, dtype=torch.float64)])
    assert not adamw_kernel.served([torch.zeros(4, 4).t()])
    assert not adamw_kernel.served([torch.zeros(3, dtype=torch.bfloat16)])
