"""A run directory belongs to one run; resume checks its inputs; every value is checked before
anything is written; signals and failures leave the run in a state --resume understands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.cli import main
from attnlab.engine.rundir import new_run_dir, run_directory


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory and its bytes (the lock file aside)."""
    files = sorted(p for p in run.rglob("*") if p.is_file() and p.name != ".lock")
    return {str(p.relative_to(run)): p.read_bytes() for p in files}


def err_of(capsys) -> str:
    return capsys.readouterr().err


TINY_TOY = ["train", "toy", "--preset", "tiny", "--no-progress"]


# ---- one process per run directory ---------------------------------------------------------------
def test_a_second_process_gets_a_clear_error_naming_the_owner(tmp_path, capsys):
    run = tmp_path / "run"
    with run_directory(run):  # this process owns the directory, as a running training would
        done = subprocess.run([sys.executable, "-m", "attnlab.cli", *TINY_TOY, "--out", str(run)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: run directory {run} is in use by another attnlab process "
                                   f"(PID {os.getpid()}); wait for it to finish, or choose another --out")
    assert not (run / "config.json").exists()  # the refused process wrote nothing


def test_default_run_directories_never_collide(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first, second = new_run_dir("toy"), new_run_dir("toy")  # the same second
    assert first != second and first.is_dir() and second.is_dir() and second.name == first.name + "-2"
    assert main(TINY_TOY) == 0 and main(TINY_TOY) == 0
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "metrics.json").exists())
    assert len(runs) == 2  # both runs kept their own directory and checkpoints
    assert all((p / "checkpoints" / "latest").exists() for p in runs)


def test_eval_refuses_to_write_into_a_training_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY_TOY, "--out", str(run)]) == 0
    before = snapshot(run)
    assert main(["eval", "toy", "--checkpoint", str(run), "--out", str(run)]) == 2
    assert "holds a training run" in err_of(capsys)
    assert snapshot(run) == before
    assert main(["train", "toy", "--resume", "--set", "train.max_steps=20", "--out", str(run), "--no-progress"]) == 0


# ---- resume checks its inputs -------------------------------------------------------------------
@pytest.fixture
def texts(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    turns = [f"Speaker{i % 3}:\nthe {'cat' if i % 2 else 'dog'} sat on mat number {i % 5} ." for i in range(60)]
    a.write_text("\n\n".join(turns))
    b.write_text("\n\n".join(t.replace("cat", "bird").replace("sat", "stood") for t in turns))
    return a, b


def test_resume_with_other_data_is_refused_and_leaves_the_run_untouched(texts, tmp_path, capsys):
    a, b = texts
    run = tmp_path / "run"
    base = ["train", "gpt", "--preset", "tiny", "--set", "data.min_freq=1", "--no-progress", "--out", str(run)]
    assert main([*base, "--data", str(a)]) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main([*base, "--data", str(b), "--resume", "--set", "train.max_steps=30"]) == 2
    err = err_of(capsys)
    assert f"the text {b} is not the file this run was trained on ({a}" in err and "--allow-changed-data" in err
    assert snapshot(run) == before  # no config.json rewrite, no new TensorBoard file, no log line
    # asked for explicitly, it continues on the new text with the run's own vocabulary
    assert main([*base, "--data", str(b), "--resume", "--set", "train.max_steps=30", "--allow-changed-data"]) == 0
    old = json.loads(before["checkpoints/" + before["checkpoints/latest"].decode().strip() + "/meta.json"])
    latest = (run / "checkpoints" / "latest").read_text().strip()
    new = json.loads((run / "checkpoints" / latest / "meta.json").read_text())
    assert new["tokenizer"] == old["tokenizer"] and "bird" not in new["tokenizer"]["vocab"]
    assert new["step"] == 30


def test_text_resume_with_other_word_vectors_is_refused(tmp_path, capsys):
    rows = [f"r{i}\t{'pos' if i % 2 else 'neg'}\t{'good fine' if i % 2 else 'bad awful'} film {i}" for i in range(40)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    words = ["good", "fine", "bad", "awful", "film"]
    for name, scale in (("v1.txt", 1.0), ("v2.txt", -1.0)):  # same size and words, other vectors
        lines = [f"{w} {scale * (i + 1):.1f} {scale * 0.5:.1f}\n" for i, w in enumerate(words)]
        (tmp_path / name).write_text("".join(lines))
    run = tmp_path / "run"
    base = ["train", "text", "--model", "logreg", "--preset", "tiny", "--train", str(tmp_path / "train.tsv"),
            "--cache-dir", str(tmp_path / "cache"), "--out", str(run), "--no-progress"]
    assert main([*base, "--embeddings", str(tmp_path / "v1.txt")]) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main([*base, "--embeddings", str(tmp_path / "v2.txt"), "--resume", "--set", "train.epochs=2"]) == 2
    assert f"the word vectors {tmp_path / 'v2.txt'} is not the file" in err_of(capsys)
    assert snapshot(run) == before


# ---- values are checked before anything is written ----------------------------------------------
@pytest.mark.parametrize("task,setting,message", [
    ("toy", "train.batch_size=0", "config key 'train.batch_size' must be >= 1"),
    ("toy", "train.batch_size=-4", "config key 'train.batch_size' must be >= 1"),
    ("toy", "train.lr=-1", "config key 'train.lr' must be > 0, got -1.0"),
    ("toy", "train.lr=nan", "config key 'train.lr' must be a finite number, got 'nan'"),
    ("toy", "train.lr=0", "config key 'train.lr' must be > 0, got 0.0"),
    ("toy", "train.grad_clip=-1", "config key 'train.grad_clip' must be > 0, got -1.0 (or none)"),
    ("toy", "train.warmup_steps=-5", "config key 'train.warmup_steps' must be >= 0"),
    ("toy", "train.time_limit=-1", "config key 'train.time_limit' must be > 0, got -1.0 (or none)"),
    ("toy", "train.weight_decay=-1", "config key 'train.weight_decay' must be >= 0, got -1.0"),
    ("toy", "model.dim=0", "config key 'model.dim' must be >= 1"),
    ("toy", "model.vocab_size=0", "config key 'model.vocab_size' must be >= 2"),
    ("gpt", "model.context=0", "config key 'model.context' must be >= 2"),
    ("gpt", "model.dropout=2", "config key 'model.dropout' must be >= 0 and < 1, got 2.0"),
    ("gpt", "model.dim=31", "model.dim=31 must be divisible by model.num_heads=2"),
    ("gpt", "train.monitor=val_bogus_loss", "train.monitor 'val_bogus_loss' is not among the validation metrics "
                                            "(val_loss, val_perplexity)"),
    ("vit", "model.patch_size=5", "model.image_size=32 is not divisible"),
])
def test_bad_values_are_one_line_before_any_file(task, setting, message, tmp_path, capsys):
    run = tmp_path / "run"
    data = ["--data-dir", str(tmp_path)] if task == "vit" else []  # never read: the value fails first
    assert main(["train", task, "--preset", "tiny", "--set", setting, "--out", str(run), "--no-progress", *data]) == 2
    last = err_of(capsys).splitlines()[-1]  # (a task may first say what data it read)
    assert last.startswith("error: ") and message in last, last
    assert not run.exists()  # a failed start leaves no directory behind


def test_out_problems_are_clear_errors(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main([*TINY_TOY, "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file, not a directory" in err_of(capsys)
    assert main([*TINY_TOY, "--out", "/proc/attnlab-run"]) == 2  # not writable, even for root
    assert "cannot create the run directory /proc/attnlab-run" in err_of(capsys)


def test_out_of_memory_configs_are_refused_with_the_number_and_the_fix(tmp_path, capsys):
    assert main(["train", "gpt", "--preset", "tiny", "--set", "model.dim=1000000", "--set", "model.num_heads=1",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = err_of(capsys)
    assert "needs about" in err and "GiB, but" in err and "lower model.context, model.dim or train.batch_size" in err
    assert not (tmp_path / "r").exists()


# ---- checkpoints: keep the last N, resume from any of them --------------------------------------
def test_keep_last_and_resume_from_an_earlier_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*TINY_TOY, "--set", "train.eval_every=4", "--set", "train.keep_last=2", "--out", str(run)]
    assert main(args) == 0
    steps = {p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-")}
    best = (run / "checkpoints" / "best").read_text().strip()
    assert steps == {"step-00000024", "step-00000028", best}  # the last two (of 28 steps), and the best
    capsys.readouterr()
    assert main(["train", "toy", "--resume-from", str(run / "checkpoints" / "step-00000024"), "--no-progress"]) == 0
    assert "resuming" in err_of(capsys)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [4, 8, 12, 16, 20, 24, 28]  # 28 once: replayed
    assert main(["train", "toy", "--resume-from", str(tmp_path), "--no-progress"]) == 2
    assert "is not a checkpoint of a run" in err_of(capsys)


def test_resume_from_abandons_the_later_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY_TOY, "--set", "train.eval_every=4", "--set", "train.keep_last=10", "--out", str(run)]) == 0
    # continue from step 12 on a shorter budget: steps 16..28 of the first attempt are abandoned
    assert main(["train", "toy", "--resume-from", str(run / "checkpoints" / "step-00000012"),
                 "--set", "train.max_steps=18", "--no-progress"]) == 0
    ckpts = run / "checkpoints"
    steps = sorted(p.name for p in ckpts.iterdir() if p.name.startswith("step-"))
    assert steps == ["step-00000004", "step-00000008", "step-00000012", "step-00000016", "step-00000018"]
    assert (ckpts / "latest").read_text().strip() == "step-00000018"
    assert (ckpts / (ckpts / "best").read_text().strip()).is_dir()  # best names a checkpoint that exists
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 18
    assert json.loads((run / "metrics.json").read_text())["steps"] == 18


def test_a_damaged_checkpoint_error_gives_advice_that_works(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY_TOY, "--out", str(run)]) == 0
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    (latest / "training.pt").write_bytes(b"truncated")
    assert main(["train", "toy", "--resume", "--out", str(run), "--set", "train.max_steps=40", "--no-progress"]) == 2
    assert "--resume-from RUN/checkpoints/step-NNNNNNNN" in err_of(capsys)


# ---- signals ------------------------------------------------------------------------------------
def test_sigterm_keeps_the_checkpoint_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "attnlab.cli", "train", "toy", "--set", "data.train_size=20000",
                             "--set", "train.epochs=50", "--set", "train.eval_every=20", "--out", str(run)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run / "checkpoints" / "latest").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    latest = (run / "checkpoints" / "latest").read_text().strip()
    assert f"terminated: the last checkpoint ({latest}) is kept; run the same command with --resume" in err
    step = int(latest.split("-")[1].split(".")[0])
    # the same command with --resume continues from there
    assert main(["train", "toy", "--resume", "--set", f"train.max_steps={step + 20}", "--out", str(run),
                 "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == step + 20


# ---- a run is always itself ----------------------------------------------------------------------
@pytest.fixture
def two_runs(tmp_path):
    """Two finished tiny toy runs (28 steps each, a checkpoint every 4 kept): ``(run, other)``."""
    runs = []
    for name, seed in (("run", "0"), ("other", "1")):
        args = [*TINY_TOY, "--set", "train.eval_every=4", "--set", "train.keep_last=10", "--set", f"train.seed={seed}"]
        assert main([*args, "--out", str(tmp_path / name)]) == 0
        runs.append(tmp_path / name)
    return runs


def test_a_pointer_out_of_the_run_is_refused(two_runs, capsys):
    run, other = two_runs
    pointer = run / "checkpoints" / "latest"
    pointer.write_text("../../other/checkpoints/step-00000012\n")
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "toy", "--resume", "--set", "train.max_steps=40", "--out", str(run), "--no-progress"]) == 2
    err = err_of(capsys)
    assert err.startswith("error: ") and "not a checkpoint of this run" in err and "Traceback" not in err
    assert snapshot(run) == before  # nothing continued another run's weights
    (run / "checkpoints" / "best").write_text(str(other / "checkpoints" / "step-00000012"))  # an absolute path
    assert main(["eval", "toy", "--checkpoint", str(run), "--out", str(run.parent / "ev")]) == 2
    assert "not a checkpoint of this run" in err_of(capsys)


def test_a_renamed_checkpoint_is_refused_as_a_resume_point(two_runs, capsys):
    run, _ = two_runs
    (run / "checkpoints" / "step-00000012").rename(run / "checkpoints" / "step-99999999")
    capsys.readouterr()
    assert main(["train", "toy", "--resume-from", str(run / "checkpoints" / "step-99999999"), "--no-progress"]) == 2
    assert "holds step 12, not the step its name says (99999999)" in err_of(capsys)


def test_eval_refuses_to_write_into_a_checkpoint(two_runs, capsys):
    run, _ = two_runs
    ckpt = run / "checkpoints" / "step-00000012"
    before = snapshot(run)
    capsys.readouterr()
    for out in (ckpt, run / "checkpoints", ckpt / "new-folder"):
        assert main(["eval", "toy", "--checkpoint", str(run), "--out", str(out)]) == 2
        assert "is a checkpoint of a training run" in err_of(capsys) or "holds a training run" in err_of(capsys)
    assert snapshot(run) == before and not (ckpt / "new-folder").exists()


@pytest.mark.parametrize("flags,message", [
    (["--resume", "--resume-from", "CKPT"], "pass either --resume (the run's latest checkpoint) or --resume-from"),
    (["--allow-changed-data"], "--allow-changed-data only applies when resuming"),
])
def test_flags_that_contradict_or_do_nothing_are_refused(two_runs, capsys, flags, message):
    run, _ = two_runs
    flags = [str(run / "checkpoints" / "step-00000012") if f == "CKPT" else f for f in flags]
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "toy", *flags, "--out", str(run.parent / "new"), "--no-progress"]) == 2
    assert message in err_of(capsys)
    assert snapshot(run) == before and not (run.parent / "new").exists()


def test_resume_from_another_run_continues_it_in_the_new_directory(two_runs, capsys):
    run, _ = two_runs
    before = snapshot(run)
    new = run.parent / "continued"
    capsys.readouterr()
    assert main(["train", "toy", "--resume-from", str(run / "checkpoints" / "step-00000012"), "--out", str(new),
                 "--no-progress"]) == 0
    assert "continuing" in err_of(capsys)
    assert snapshot(run) == before  # the original run is untouched
    records = [json.loads(x) for x in (new / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [16, 20, 24, 28]
    # the same steps as the original run took from step 12: same numbers (bit-exact resume)
    original = {r["step"]: r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if "val_loss" in r}
    assert all(r["val_loss"] == original[r["step"]] for r in records if "val_loss" in r)
    assert (new / "checkpoints" / (new / "checkpoints" / "best").read_text().strip()).is_dir()


def test_train_in_a_read_only_current_directory_is_one_error(tmp_path, monkeypatch, capsys):
    import errno

    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if Path(os.path.abspath(self)).is_relative_to(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(TINY_TOY) == 2
    err = err_of(capsys)
    assert err.startswith("error: cannot write runs/toy-") and "is on a read-only file system" in err
    assert "pass --out DIR" in err and "Traceback" not in err


def test_a_full_disk_at_the_lock_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    assert main([*TINY_TOY, "--out", str(tmp_path / "run")]) == 2
    assert "cannot write" in err_of(capsys) and not (tmp_path / "run").exists()


def test_a_very_long_step_is_announced_before_it_starts(tmp_path, monkeypatch, capsys):
    import attnlab.tasks.lm as lm

    monkeypatch.setattr(lm, "SLOW_STEP_FLOPS", 1.0)  # every step counts as long
    assert main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    err = err_of(capsys)
    warning = next(line for line in err.splitlines() if line.startswith("warning: one training step"))
    assert "model.context=32, train.batch_size=16): expect minutes per step" in warning
    assert err.index("warning: one training step") < err.index("training 1 steps")  # before the work starts
