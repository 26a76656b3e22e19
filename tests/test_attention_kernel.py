"""The C++ causal attention kernel (:mod:`attnlab.attention_kernel`): against float64 autograd of
the explicit attention, against PyTorch's float32 kernel's own error, in place of it inside
MultiHeadedAttention, and where it does not serve."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from attnlab import attention_kernel, native
from attnlab.attention import scaled_dot_product_attention
from attnlab.attention_kernel import MAX_CONTEXT, causal_self_attention, kernel_for
from attnlab.errors import AttnlabError
from attnlab.layers import MultiHeadedAttention


@pytest.fixture(scope="module")
def kernel():
    module, reason = attention_kernel.KERNEL.built_or_reason()
    assert module is not None, reason
    return module


COPIES = ("avx512f", "avx2", "generic")  # the kernel's copies, one per instruction set, best first


@contextlib.contextmanager
def running(kernel, name: str):
    """The kernel with its copy ``name`` in use, and the copy it had back afterwards."""
    chosen = kernel.copy()
    kernel.use_copy(name)
    try:
        yield kernel
    finally:
        kernel.use_copy(chosen)


@pytest.fixture(params=COPIES)
def each_copy(kernel, request):
    """The kernel running one copy after another (skipped where this CPU lacks the instruction set)."""
    if request.param not in kernel.copies():
        pytest.skip(f"this CPU cannot run the {request.param} copy")
    with running(kernel, request.param):
        yield kernel


def reference(qkv: torch.Tensor, heads: int, grad: torch.Tensor):
    """Output and qkv's gradient by autograd of the explicit attention, in float64."""
    x = qkv.detach().double().requires_grad_()
    B, T, C3 = x.shape
    q, k, v = x.view(B, T, 3, heads, C3 // (3 * heads)).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, hd) each
    out = scaled_dot_product_attention(q, k, v, is_causal=True)[0].transpose(1, 2).reshape(B, T, C3 // 3)
    out.backward(grad.double())
    return out.detach(), x.grad


def torch_float32(qkv: torch.Tensor, heads: int, grad: torch.Tensor):
    """The same by PyTorch's fused kernel in float32: the error the kernel is held to."""
    x = qkv.detach().clone().requires_grad_()
    B, T, C3 = x.shape
    q, k, v = x.view(B, T, 3, heads, C3 // (3 * heads)).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C3 // 3)
    out.backward(grad)
    return out.detach(), x.grad


def ours(kernel, qkv: torch.Tensor, heads: int, grad: torch.Tensor):
    x = qkv.detach().clone().requires_grad_()
    out = causal_self_attention(kernel, x, heads)
    out.backward(grad)
    return out.detach(), x.grad


@pytest.mark.needs_compiler
@pytest.mark.parametrize("B,T,H,hd", [(2, 64, 4, 32), (3, 17, 2, 24), (1, 1, 1, 8), (2, 128, 2, 64), (1, 33, 3, 16),
                                      (2, 5, 1, 40)])
def test_output_and_gradient_match_float64_as_closely_as_torchs_own_kernel(each_copy, B, T, H, hd):
    kernel = each_copy
    gen = torch.Generator().manual_seed(T * 7 + hd)
    qkv = torch.randn(B, T, 3 * H * hd, generator=gen) * 2
    grad = torch.randn(B, T, H * hd, generator=gen)
    ref_out, ref_grad = reference(qkv, H, grad)
    out, g = ours(kernel, qkv, H, grad)
    t_out, t_grad = torch_float32(qkv, H, grad)
    err, t_err = (out.double() - ref_out).abs().max(), (t_out.double() - ref_out).abs().max()
    gerr, t_gerr = (g.double() - ref_grad).abs().max(), (t_grad.double() - ref_grad).abs().max()
    assert err <= 4 * t_err + 1e-6 and gerr <= 4 * t_gerr + 1e-6, (err, t_err, gerr, t_gerr)
    assert err < 1e-5 and gerr < 1e-4


@pytest.mark.needs_compiler
def test_huge_scores_stay_finite_and_match_float64(kernel):
    gen = torch.Generator().manual_seed(1)
    qkv = torch.randn(2, 40, 3 * 2 * 16, generator=gen) * 60  # scores in the thousands
    grad = torch.randn(2, 40, 32, generator=gen)
    ref_out, ref_grad = reference(qkv, 2, grad)
    out, g = ours(kernel, qkv, 2, grad)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    assert torch.allclose(out.double(), ref_out, rtol=1e-4, atol=1e-3)
    assert torch.allclose(g.double(), ref_grad, rtol=1e-4, atol=1e-2)


@pytest.mark.needs_compiler
def test_the_first_position_sees_only_itself_and_no_position_sees_the_future(kernel):
    qkv = torch.randn(1, 8, 3 * 16)
    out = causal_self_attention(kernel, qkv, 1)
    assert torch.equal(out[0, 0], qkv[0, 0, 32:])  # its own value, weight exactly 1
    changed = qkv.clone()
    changed[0, 5:] += 1.0  # the future of positions 0-4
    assert torch.equal(causal_self_attention(kernel, changed, 1)[0, :5], out[0, :5])


@pytest.mark.needs_compiler
def test_the_same_numbers_with_and_without_autograd_and_on_any_thread_count(kernel):
    qkv = torch.randn(3, 64, 3 * 4 * 32)
    grad = torch.randn(3, 64, 128)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_out, one_grad = ours(kernel, qkv, 4, grad)
        torch.set_num_threads(2)
        two_out, two_grad = ours(kernel, qkv, 4, grad)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        inference = causal_self_attention(kernel, qkv, 4)  # no weights kept
    assert torch.equal(one_out, two_out) and torch.equal(one_grad, two_grad) and torch.equal(inference, one_out)


@pytest.mark.needs_compiler
def test_the_avx2_and_avx512_copies_give_the_same_bits(kernel):
    """Both fuse every multiply-add and sum in the same order (vectors of 8 floats or 16), so a model
    trains to the same numbers on either CPU; the generic copy rounds products apart."""
    if not {"avx512f", "avx2"} <= set(kernel.copies()):
        pytest.skip("needs a CPU with AVX-512")
    results = {}
    for name in ("avx512f", "avx2", "generic"):
        with running(kernel, name):
            results[name] = [ours(kernel, torch.randn(B, T, 3 * H * hd, generator=torch.Generator().manual_seed(T)),
                                  H, torch.randn(B, T, H * hd, generator=torch.Generator().manual_seed(hd)))
                             for B, T, H, hd in [(12, 64, 4, 32), (3, 17, 2, 24), (1, 127, 1, 48), (2, 50, 2, 6)]]
    same = [[torch.equal(a, b) for a, b in zip(x, y)] for x, y in zip(results["avx512f"], results["avx2"])]
    assert all(all(pair) for pair in same), same
    assert not torch.equal(results["avx512f"][0][0], results["generic"][0][0])  # it can tell copies apart


@pytest.mark.needs_compiler
def test_the_copy_in_use_is_the_best_this_cpu_has_and_a_missing_one_is_refused(kernel):
    assert kernel.copy() == kernel.copies()[0] and kernel.copies()[-1] == "generic"
    assert set(kernel.copies()) <= set(COPIES)
    with pytest.raises(RuntimeError, match="this CPU cannot run the kernel's sse9 copy"):
        kernel.use_copy("sse9")


@pytest.mark.needs_compiler
def test_bad_inputs_are_refused_by_the_kernel(kernel):
    with pytest.raises(RuntimeError, match="contiguous float32 CPU tensor"):
        kernel.forward(torch.randn(1, 4, 12, dtype=torch.float64), 1, False)
    with pytest.raises(RuntimeError, match=r"qkv must be \(B, T, 3 \* heads \* hd\)"):
        kernel.forward(torch.randn(1, 4, 10), 2, False)


@pytest.mark.needs_compiler
def test_multiheaded_attention_uses_it_for_short_causal_windows_and_matches_pytorchs_path(monkeypatch):
    torch.manual_seed(0)
    attn = MultiHeadedAttention(32, 4, 8, bias=True, native=True)
    x = torch.randn(2, 20, 32)
    calls = []
    real = attention_kernel.causal_self_attention
    monkeypatch.setattr("attnlab.layers.causal_self_attention", lambda *a: calls.append(1) or real(*a))
    results = {}
    for backend in ("cpp", "torch"):
        monkeypatch.setenv("ATTNLAB_ATTENTION", backend)
        attn.zero_grad()
        xi = x.clone().requires_grad_()
        out, weights = attn(xi, is_causal=True)
        out.square().sum().backward()
        results[backend] = (out, xi.grad, attn.qkv.weight.grad.clone())
    assert len(calls) == 1 and weights is None  # the kernel ran once: under cpp
    for a, b in zip(results["cpp"], results["torch"]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("ATTNLAB_ATTENTION", "cpp")
    attn(x, is_causal=True, need_weights=True)  # the weights asked for: the explicit path
    attn(x, torch.ones(20, 20, dtype=torch.bool).tril(), is_causal=True)  # a mask besides: PyTorch's
    attn(x)  # not causal
    assert len(calls) == 1
    plain = MultiHeadedAttention(32, 4, 8)  # native=False, the default: the encoder-decoder's, the ViT's
    plain.load_state_dict(attn.state_dict())
    plain(x, is_causal=True)
    assert len(calls) == 1


@pytest.mark.needs_compiler
def test_dialoguegpt_blocks_use_it_and_train_as_with_pytorchs_kernel(monkeypatch):
    from attnlab.models.gpt import GPTConfig, random_gpt

    model = random_gpt(GPTConfig(vocab_size=50, context=32, dim=32, num_heads=2, num_layers=2, mlp_dim=64,
                                 dropout=0.0))
    assert all(layer.attn.native for layer in model.transformer.layers)
    ids = torch.randint(2, 50, (3, 32), generator=torch.Generator().manual_seed(0))
    grads = {}
    for backend in ("cpp", "torch"):
        monkeypatch.setenv("ATTNLAB_ATTENTION", backend)
        model.zero_grad()
        logits = model(ids)
        F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
        grads[backend] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.allclose(grads["cpp"][0], grads["torch"][0], atol=1e-5)
    for a, b in zip(grads["cpp"][1], grads["torch"][1]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_where_the_kernel_does_not_serve(monkeypatch):
    def ask(*shape, dtype=torch.float32, p=0.0, backend="cpp"):
        return kernel_for(torch.zeros(*shape, dtype=dtype), p, backend)

    monkeypatch.setattr(attention_kernel.KERNEL, "built_or_reason", lambda: ("module", ""))
    assert ask(2, MAX_CONTEXT, 24) == "module"
    assert ask(2, MAX_CONTEXT + 1, 24) is None  # a long window: PyTorch's flash kernel
    assert ask(2, 8, 24, p=0.1) is None  # attention dropout
    assert ask(2, 8, 24, dtype=torch.float64) is None and ask(2, 8, 24, dtype=torch.bfloat16) is None
    assert ask(2, 8, 24, backend="torch") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ask(2, 8, 24) is None


def test_cpp_is_an_error_and_auto_one_warning_where_it_cannot_be_built(monkeypatch, capsys):
    monkeypatch.setattr(attention_kernel.KERNEL, "built_or_reason",
                        lambda: (None, "Ninja is required to load C++ extensions"))
    with pytest.raises(AttnlabError) as err:
        kernel_for(torch.zeros(1, 4, 12), 0.0, "cpp")
    message = str(err.value)
    assert "ATTNLAB_ATTENTION=cpp could not build the C++ attention kernel (Ninja is required" in message
    assert "pip install ninja" in message and "ATTNLAB_ATTENTION=torch" in message
    monkeypatch.setattr(native, "can_build_native", lambda: True)
    attention_kernel.KERNEL.forget()
    try:
        assert kernel_for(torch.zeros(1, 4, 12), 0.0, "auto") is None
        assert kernel_for(torch.zeros(1, 4, 12), 0.0, "auto") is None
    finally:
        attention_kernel.KERNEL.forget()
    err_text = capsys.readouterr().err
    assert err_text.count("warning: could not build the C++ attention kernel (Ninja is required") == 1
    assert "using PyTorch's (ATTNLAB_ATTENTION=torch skips the attempt)" in err_text


def test_a_run_is_told_once_what_the_kernel_needs_where_it_would_serve_but_cannot_be_built(monkeypatch, capsys):
    monkeypatch.delenv("ATTNLAB_ATTENTION", raising=False)
    monkeypatch.setattr(native, "can_build_native", lambda: False)
    attention_kernel.KERNEL.forget()
    try:
        attention_kernel.build_if_served(64, "cpu")
        hint = capsys.readouterr().err
        attention_kernel.build_if_served(MAX_CONTEXT + 1, "cpu")  # PyTorch's flash kernel serves long windows
        monkeypatch.setenv("ATTNLAB_ATTENTION", "torch")  # asked for PyTorch's
        attention_kernel.build_if_served(64, "cpu")
        assert capsys.readouterr().err == ""
    finally:
        attention_kernel.KERNEL.forget()
    assert hint == ("attnlab: attention runs on PyTorch's kernel; attnlab's C++ kernel trains windows of up to 128 "
                    "positions faster where the machine has a C++ compiler with OpenMP and ninja (pip install ninja)\n")


def test_the_choice_is_read_from_the_environment():
    assert native.attention_backend({}) == "auto"
    assert native.attention_backend({"ATTNLAB_ATTENTION": " Torch "}) == "torch"
    with pytest.raises(AttnlabError, match="ATTNLAB_ATTENTION='gpu' is not one of auto, torch, cpp"):
        native.attention_backend({"ATTNLAB_ATTENTION": "gpu"})
