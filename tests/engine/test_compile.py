"""train.compile: torch.compile behind an engine switch. Same losses (within float tolerance), the
same checkpoint format, and --resume across the switch."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from attnlab.engine import fit

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="torch.compile on the CPU needs a C compiler (none found)")


def run(tiny, run_dir, *, compile: bool, steps: int, resume: bool = False, loss=None):
    torch.manual_seed(0)
    model = tiny.net(dropout=0.0)
    cfg = tiny.cfg(epochs=4, max_steps=steps, compile=compile)
    metrics = fit(model, loss or tiny.loss, tiny.batches(tiny.data(64), 8),
                  tiny.batches(tiny.data(16, seed=1), 8, shuffle=False), cfg, run_dir, meta={"task": "unit"},
                  resume=resume, progress=False, tensorboard=False)
    return model, metrics


def test_compiled_training_matches_eager_and_saves_plain_checkpoints(tmp_path, tiny):
    eager, m_eager = run(tiny, tmp_path / "eager", compile=False, steps=12)
    compiled, m_compiled = run(tiny, tmp_path / "compiled", compile=True, steps=12)
    # Inductor fuses and reorders float operations, so the two runs agree to rounding, not bit for bit.
    a, b = tiny.train_losses(tmp_path / "eager"), tiny.train_losses(tmp_path / "compiled")
    assert a.keys() == b.keys() and len(a) == 12
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-6), step
    assert m_compiled["val_loss"] == pytest.approx(m_eager["val_loss"], rel=1e-4)
    for pe, pc in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(pe, pc, rtol=1e-4, atol=1e-5)
    # the checkpoint holds the plain model's names: no "_orig_mod." prefix
    best = (tmp_path / "compiled" / "checkpoints" / "best").read_text().strip()
    keys = set(load_file(str(tmp_path / "compiled" / "checkpoints" / best / "model.safetensors")))
    assert keys == set(dict(eager.named_parameters())) and not any("_orig_mod" in k for k in keys)


def test_resume_across_the_switch(tmp_path, tiny):
    """Stop a compiled run after 6 steps, resume it eager (and the other way round): both end
    where an uninterrupted eager run ends, to rounding."""
    _, full = run(tiny, tmp_path / "full", compile=False, steps=12)
    for first, second in ((True, False), (False, True)):
        d = tmp_path / f"switch-{first}"
        with pytest.raises(KeyboardInterrupt, match="interrupted at training call 9"):
            run(tiny, d, compile=first, steps=12, loss=tiny.interrupt(tiny.loss, at_call=9))  # checkpoint at step 8
        _, resumed = run(tiny, d, compile=second, steps=12, resume=True)
        assert resumed["steps"] == 12
        assert resumed["val_loss"] == pytest.approx(full["val_loss"], rel=1e-4)
        records = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if "train_loss" in r] == list(range(1, 13))
