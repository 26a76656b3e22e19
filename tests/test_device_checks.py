"""tools/device_checks.py: the GPU measurements' script, rehearsed on the CPU so that it runs the day a GPU is lent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "device_checks.py"


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_the_rehearsal_runs_every_stage_and_summarises_it(tmp_path):
    # Every stage at toy size on the CPU: benches, char-gpu, the synthetic-image ViT without and
    # with compile. Each must succeed and leave its figures, its log and its run's metrics.
    out = tmp_path / "out"
    done = run("--out", str(out), "--rehearse")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    stages = {s["stage"]: s for s in summary["stages"]}
    assert list(stages) == ["bench attention", "bench gpt", "bench vit", "bench generate", "char-gpu", "vit-eager",
                            "vit-compile"]
    assert all(s["rc"] == 0 for s in stages.values())
    assert summary["facts"]["device"] == "cpu" and summary["facts"]["torch"] == torch.__version__
    assert summary["facts"]["missing modules"] == "none"  # the test environment has all of them
    char = stages["char-gpu"]
    assert char["steps"] == 4 and char["nanogpt_val_loss"] == 1.4697 and 0 < char["val_loss"] < 10
    assert char["rate_median_second_half"] > 0
    for name in ("vit-eager", "vit-compile"):
        assert stages[name]["steps"] == 3 and "test_accuracy" in stages[name]
        assert (out / name / "metrics.jsonl").exists() and not (out / name / "checkpoints").exists()
    assert "train.compile=true" in stages["vit-compile"]["command"]
    assert all((out / s["log"]).exists() for s in stages.values())
    text = (out / "summary.md").read_text()
    assert "## char-gpu: rc 0" in text and "- nanogpt_val_loss: 1.4697" in text
    assert not any(p.name == "synthetic-images" for p in out.rglob("*"))  # the images stay in the work folder


def test_a_spent_budget_skips_the_remaining_stages(tmp_path):
    done = run("--out", str(tmp_path), "--rehearse", "--budget", "1", timeout=60)
    assert done.returncode == 1
    stages = json.loads((tmp_path / "summary.json").read_text())["stages"]
    assert len(stages) == 7 and all(s["rc"] == "skipped (budget spent)" for s in stages)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_it_says_so_and_exits_2(tmp_path):
    done = run("--out", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert "no CUDA GPU here" in done.stderr and "--rehearse" in done.stderr


def test_without_pillow_the_image_stages_are_skipped_and_say_why(tmp_path):
    blocker = tmp_path / "blocked" / "PIL"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("Pillow is blocked for this test")\n')
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "--rehearse", "--budget", "1"],
                          capture_output=True, text=True, timeout=120, env=env)
    stages = {s["stage"]: s["rc"] for s in json.loads((tmp_path / "out" / "summary.json").read_text())["stages"]}
    assert done.returncode == 1
    assert stages["vit-eager"] == stages["vit-compile"] == "skipped (no Pillow to write and read the images)"
    assert stages["char-gpu"] == "skipped (budget spent)"
