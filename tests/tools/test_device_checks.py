"""tools/device_checks.py: the GPU measurements' script, rehearsed on the CPU so that it runs the day a GPU is lent."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "device_checks.py"


@pytest.fixture
def run(tool):
    """``python tools/device_checks.py ARGS...``"""
    return lambda *args, **kwargs: tool("device_checks.py", *args, **kwargs)


def test_the_rehearsal_runs_every_stage_and_summarises_it(tmp_path, run):
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


def test_a_spent_budget_skips_the_remaining_stages(tmp_path, run):
    done = run("--out", str(tmp_path), "--rehearse", "--budget", "1", timeout=60)
    assert done.returncode == 1
    stages = json.loads((tmp_path / "summary.json").read_text())["stages"]
    assert len(stages) == 7 and all(s["rc"] == "skipped (budget spent)" for s in stages)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_it_says_so_and_exits_2(tmp_path, run):
    done = run("--out", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert "no CUDA GPU here" in done.stderr and "--rehearse" in done.stderr


def test_without_pillow_the_image_stages_are_skipped_and_say_why(tmp_path, run):
    blocker = tmp_path / "blocked" / "PIL"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("Pillow is blocked for this test")\n')
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = run("--out", str(tmp_path / "out"), "--rehearse", "--budget", "1", timeout=120, env=env)
    stages = {s["stage"]: s["rc"] for s in json.loads((tmp_path / "out" / "summary.json").read_text())["stages"]}
    assert done.returncode == 1
    assert stages["vit-eager"] == stages["vit-compile"] == "skipped (no Pillow to write and read the images)"
    assert stages["char-gpu"] == "skipped (budget spent)"


def test_with_real_cifar_the_training_runs_come_first_and_wait_for_the_data(tmp_path, make_cifar):
    # The device run unpacks CIFAR-10 beside the script: the first stage waits for the folder,
    # then the two real runs, the benches, and a compiled run on the same data.
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(out), "--rehearse", "--cifar", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    staging = make_cifar(tmp_path / "staging", per_batch=20)
    time.sleep(5)  # the script is at its first stage, waiting (without the wait it would fail on a missing folder)
    staging.rename(data)  # appears whole
    try:
        log, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()  # (a no-op once it has ended; never left running past a timeout)
    assert proc.returncode == 0, log
    stages = {s["stage"]: s for s in json.loads((out / "summary.json").read_text())["stages"]}
    assert list(stages) == ["cifar10-gpu", "char-gpu", "bench generate", "bench vit", "bench gpt", "bench attention",
                            "vit-compile"]
    assert all(s["rc"] == 0 for s in stages.values())
    vit = stages["cifar10-gpu"]
    assert vit["steps"] == 3 and "test_accuracy" in vit and f"--data-dir {data}" in vit["command"]
    assert "train.time_limit=300" in vit["command"] and "train.time_limit=150" in stages["char-gpu"]["command"]
    assert "train.compile=true" in stages["vit-compile"]["command"]
    assert not (tmp_path / "out" / "synthetic-images").exists()


def test_a_cifar_folder_that_never_appears_skips_its_stage_and_says_so(tmp_path, run):
    missing = tmp_path / "nowhere"
    done = run("--out", str(tmp_path / "out"), "--rehearse", "--budget", "1", "--cifar", str(missing),
               "--cifar-wait", "0", timeout=60)
    stages = {s["stage"]: s["rc"] for s in json.loads((tmp_path / "out" / "summary.json").read_text())["stages"]}
    assert done.returncode == 1
    assert stages["cifar10-gpu"] == f"skipped ({missing} did not appear)"
    assert stages["char-gpu"] == "skipped (budget spent)"


def _module():
    spec = importlib.util.spec_from_file_location("device_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_follow_up_plan_runs_char_gpu_on_a_second_seed_then_cifar10_gpu_eager_to_its_end(tmp_path):
    plan = _module().stages(tmp_path, tmp_path / "synth", tmp_path / "cifar", False, None, "follow-up")
    assert [name for name, _, _ in plan] == ["char-gpu-seed1", "cifar10-gpu-eager-full"]
    char, vit = (" ".join(args) for _, args, _ in plan)
    assert "--preset char-gpu" in char and "train.seed=1" in char and "compile" not in char
    assert "--preset cifar10-gpu" in vit and "train.seed=0" in vit and "compile" not in vit
    assert "train.time_limit=420" in vit and "train.time_limit=150" in char
    assert "max_steps" not in vit + char  # full runs on the GPU, only time-capped


def test_the_follow_up_plan_without_cifar_is_a_usage_error(tmp_path, run):
    done = run("--out", str(tmp_path), "--plan", "follow-up", timeout=60)
    assert done.returncode == 2 and "--plan follow-up needs --cifar DIR" in done.stderr


def test_a_short_budget_lowers_a_runs_time_limit_to_leave_room_for_its_validation():
    module = _module()
    args = ["train", "vit", "--set", "train.time_limit=300", "--set", "train.max_steps=3"]
    assert module.capped(args, 1000) == args  # room enough: unchanged
    assert module.capped(args, 200) == ["train", "vit", "--set", "train.time_limit=140", "--set", "train.max_steps=3"]
    assert module.capped(args, 30)[3] == "train.time_limit=5"  # never below 5 s


def test_a_training_run_with_less_than_a_minute_left_is_skipped_not_started(tmp_path):
    # the first H200 run started its last compiled run with 39 s left: capped at 5 s, it timed out compiling
    module, records = _module(), []
    plan = [("vit-compile", ["train", "vit", "--set", "train.time_limit=120"], 180)]
    module._run_all(plan, time.time() + 50, tmp_path, {}, records, {})
    assert re.fullmatch(r"skipped \((49|50) s left: too little for a training run\)", records[0]["rc"])
    assert (tmp_path / "summary.md").exists()
