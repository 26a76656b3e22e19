"""attnlab bench nanogpt: each side in its own process (or both in one, in turn), same weights and
batch, every pair or round shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnlab import allocator
from attnlab.bench.nanogpt import SHAPES, _spawn, training_step
from attnlab.cli import main
from attnlab.models.gpt import GPTConfig, random_gpt

NANOGPT = os.environ.get("ATTNLAB_NANOGPT")  # nanoGPT's model.py, e.g. from a checkout of karpathy/nanoGPT


def test_the_attnlab_side_trains_the_preset_shape_from_its_seed_under_the_kept_allocator():
    out = _spawn({"shape": "char", "nanogpt": "", "steps": 2, "threads": 1, "side": "attnlab",
                  "allocator": "keep"})
    fields, batch, _ = SHAPES["char"]
    model = random_gpt(GPTConfig(**fields, dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randint(2, fields["vocab_size"], (batch, fields["context"]), generator=gen) for _ in range(2))
    with torch.no_grad():
        expected = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert out["first_loss"] == pytest.approx(float(expected), abs=1e-6)
    assert out["threads"] == 1 and out["ms"] > 0
    assert out["allocator_kept"] is allocator._is_glibc()
    assert out["model"] == "4 layers, dim 128"


def test_a_missing_nanogpt_file_is_one_clear_error(tmp_path, capsys):
    assert main(["bench", "nanogpt", "--nanogpt", str(tmp_path / "model.py")]) == 2
    assert f"error: no nanoGPT model file at {tmp_path / 'model.py'}; pass the model.py" in capsys.readouterr().err
    assert main(["bench", "nanogpt", "--nanogpt", str(tmp_path), "--pairs", "0"]) == 2


def test_the_attnlab_step_is_fits_optimizer_step_on_the_shape():
    """The in-process step: the loss of the shape's batch, then one AdamW step with fit's optimizer
    (FlatAdamW), whose next loss is that of torch's AdamW doing the same."""
    from attnlab.engine.schedule import param_groups

    step, words = training_step("attnlab", "char", "")
    assert words == "4 layers, dim 128"
    fields, batch, _ = SHAPES["char"]
    model = random_gpt(GPTConfig(**fields, dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randint(2, fields["vocab_size"], (batch, fields["context"]), generator=gen) for _ in range(2))
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    assert [step() for _ in range(3)] == losses  # bit for bit


def test_a_failing_side_is_one_line(tmp_path, capsys):
    (tmp_path / "model.py").write_text("raise ImportError('not nanoGPT')\n")
    assert main(["bench", "nanogpt", "--nanogpt", str(tmp_path / "model.py"), "--shape", "char", "--pairs", "1",
                 "--steps", "1", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: the nanoGPT process failed:" in err and "did not build a nanoGPT GPT" in err
    assert main(["bench", "nanogpt", "--nanogpt", str(tmp_path / "model.py"), "--shape", "char", "--pairs", "1",
                 "--steps", "1", "--threads", "1", "--in-process"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "did not build a nanoGPT GPT" in err


@pytest.mark.skipif(not NANOGPT or not Path(NANOGPT).is_file(), reason="set ATTNLAB_NANOGPT to nanoGPT's model.py")
def test_against_nanogpt_the_first_losses_agree_and_every_pair_is_shown(capsys):
    assert main(["bench", "nanogpt", "--nanogpt", NANOGPT, "--shape", "char", "--pairs", "2", "--steps", "2",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "nanoGPT runs with glibc's defaults" in out and "speed-up over nanoGPT's step" in out
    assert out.count("x ") >= 2  # one ratio per pair
    loss = out.split("first loss: attnlab ")[1]
    ours, theirs = loss.split(", nanoGPT ")[0], loss.split(", nanoGPT ")[1].split(" ")[0]
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)


@pytest.mark.skipif(not NANOGPT or not Path(NANOGPT).is_file(), reason="set ATTNLAB_NANOGPT to nanoGPT's model.py")
def test_in_process_rounds_alternate_and_the_first_losses_agree(capsys):
    assert main(["bench", "nanogpt", "--nanogpt", NANOGPT, "--shape", "char", "--pairs", "3", "--steps", "2",
                 "--threads", "1", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "both in this process" in out and "speed-up over nanoGPT's step" in out
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 3  # one ratio per round
    for row in rows:
        _, ours, theirs, ratio = row.split()
        assert float(ratio.rstrip("x")) == pytest.approx(float(theirs) / float(ours), abs=2e-3)
    loss = out.split("first loss: attnlab ")[1]
    ours, theirs = loss.split(", nanoGPT ")[0], loss.split(", nanoGPT ")[1].split(" ")[0]
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)
