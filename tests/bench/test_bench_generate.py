"""`attnlab bench generate`: batched runs, the nanoGPT comparison (its own model.py, when given) and its errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from attnlab.bench.generate import nanogpt_twin
from attnlab.cli import main
from attnlab.models.gpt import GPTConfig, generate, random_gpt

SMALL = ["bench", "generate", "--context", "16", "--num-tokens", "6", "--dim", "16", "--layers", "1",
         "--heads", "2", "--vocab", "50", "--repeats", "1", "--threads", "1"]
NANOGPT = os.environ.get("ATTNLAB_NANOGPT")  # nanoGPT's model.py, e.g. from a checkout of karpathy/nanoGPT


@pytest.fixture(autouse=True)
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_a_batch_gives_identical_tokens_and_no_nanogpt_is_a_note(capsys):
    assert main([*SMALL, "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "after 3 prompts of 1 tokens" in out and "1 CPU thread: asked for" in out
    assert "identical tokens: yes (KV cache, no cache)" in out
    assert "nanoGPT: not compared (pass --nanogpt PATH/model.py of a nanoGPT checkout)" in out
    assert "cached steps of 3 rows in Python (ATTNLAB_DECODE=auto)" in out  # batches stay in Python


@pytest.mark.needs_compiler
@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_the_cpp_step_is_timed_by_default_or_when_asked_with_the_same_tokens(capsys, monkeypatch, backend):
    monkeypatch.setenv("ATTNLAB_DECODE", backend)
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    assert f"cached steps of one row in C++ (ATTNLAB_DECODE={backend})" in out
    assert "identical tokens: yes (KV cache, no cache)" in out


def test_a_missing_nanogpt_file_is_one_clear_error(tmp_path, capsys):
    assert main([*SMALL, "--nanogpt", str(tmp_path / "model.py")]) == 2
    assert f"error: no nanoGPT model file at {tmp_path / 'model.py'}; pass the model.py" in capsys.readouterr().err
    (tmp_path / "model.py").write_text("raise ImportError('not nanoGPT')\n")
    assert main([*SMALL, "--nanogpt", str(tmp_path / "model.py")]) == 2
    assert "did not build a nanoGPT GPT (ImportError: not nanoGPT)" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_cuda_without_a_gpu_is_one_clear_error(capsys):
    assert main([*SMALL, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --device cuda was asked for but CUDA is not available; use --device cpu"


@pytest.mark.skipif(not NANOGPT or not Path(NANOGPT).is_file(), reason="set ATTNLAB_NANOGPT to nanoGPT's model.py")
def test_nanogpt_twin_has_our_logits_and_greedy_tokens():
    model = random_gpt(GPTConfig(vocab_size=300, context=32, dim=32, num_heads=4, num_layers=2, mlp_dim=128), seed=1)
    twin = nanogpt_twin(model, NANOGPT)
    x = torch.randint(3, 300, (2, 20))
    with torch.no_grad():
        ours = model(x)[:, -1]
        theirs, _ = twin(x)
    finite = torch.isfinite(theirs[:, -1])  # the pad and start ids are -inf there
    torch.testing.assert_close(theirs[:, -1][finite], ours[finite], atol=1e-5, rtol=1e-5)
    assert (~finite).sum() == 4
    with torch.no_grad():
        nano = twin.generate(torch.tensor([[2, 7]]), 25, temperature=1.0, top_k=1)[0, 2:].tolist()
    assert nano == generate(model, [2, 7], 25)
