"""The attnlab CLI: help texts, one-line errors with exit 2, and a toy run end to end (train, eval, resume)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attnlab import cli
from attnlab.errors import AttnlabError

TINY = ["--preset", "tiny", "--set", "train.max_steps=6", "--set", "train.eval_every=3", "--no-progress"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv", [[], ["train"], ["eval"], ["data"], ["bench"], ["lab"], ["train", "toy"],
                                  ["eval", "toy"], ["data", "fetch"], ["data", "list"]])
def test_every_help_says_what_and_shows_an_example(capsys, argv):
    with pytest.raises(SystemExit, match="^0$") as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: attnlab" in text
    assert "example" in text and "attnlab " in text.split("example")[-1]


def test_sweep_task_help_exits_0_with_the_task_options(capsys):
    assert cli.main(["sweep", "toy", "--help"]) == 0
    assert "usage: attnlab sweep toy" in capsys.readouterr().out


def test_train_text_examples_name_the_word_vectors(capsys):
    """The models built on frozen vectors need them: every example that trains one passes them (the
    transformer and rnn train their own embeddings; bert starts from --init)."""
    with pytest.raises(SystemExit, match="^0$"):
        cli.main(["train", "text", "--help"])
    examples = capsys.readouterr().out.split("example")[-1]
    trains = [line for line in examples.splitlines() if line.strip().startswith("attnlab train text")
              and "--resume" not in line and "--list-presets" not in line]
    own = ("--model transformer", "--model rnn", "--model bert --init")
    assert trains and all("--embeddings" in line or any(m in line for m in own) for line in trains)


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit, match="^0$"):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in text


@pytest.mark.parametrize("setting,words", [
    ("train.lrr=1", "unknown config key 'train.lrr'; did you mean 'train.lr'"),
    ("train.lr=fast", "config key 'train.lr' expects float, got 'fast'"),
    ("train.precision=fp8", "expects one of 'auto', 'bf16', 'fp16', 'fp32'"),
    # 0 is not "each epoch" (that is none)
    ("train.eval_every=0", "config key 'train.eval_every' must be >= 1 and <= 16,777,216, got 0 (or none)"),
])
def test_bad_set_is_one_line_and_exit_2(capsys, tmp_path, setting, words):
    code, out, err = run(capsys, "train", "toy", "--set", setting, "--out", str(tmp_path / "r"))
    assert code == 2 and err.startswith("error: ") and words in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written for a rejected config


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit, match="^2$") as info:
        cli.main(["train", "nosuchtask"])
    assert info.value.code == 2
    with pytest.raises(SystemExit, match="^2$") as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize("argv, prog", [(["train", "toy", "--bogus"], "attnlab train toy"),
                                        (["curves", "run", "--bogus"], "attnlab curves"),
                                        (["lab", "graph", "--bogus"], "attnlab lab graph")])
def test_an_unknown_option_shows_the_usage_of_the_command_given(capsys, argv, prog):
    with pytest.raises(SystemExit, match="^2$") as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith(f"usage: {prog} ") and f"{prog}: error: unrecognized arguments: --bogus" in err


def test_missing_modules_give_clear_errors(capsys, monkeypatch):
    from attnlab.bench import BENCHMARKS
    from attnlab.tasks import TASKS

    monkeypatch.setitem(TASKS.help, "ghost", "a task still being written")
    code, _, err = run(capsys, "train", "ghost")
    assert code == 2 and "task 'ghost' is not available" in err
    monkeypatch.setitem(BENCHMARKS.help, "ghost", "a benchmark still being written")
    code, _, err = run(capsys, "bench", "ghost")
    assert code == 2 and "benchmark 'ghost' is not available" in err
    with pytest.raises(AttnlabError, match="unknown task 'gtp'; did you mean 'gpt'"):
        TASKS.load("gtp")


def test_list_presets_and_print_config(capsys):
    code, out, _ = run(capsys, "train", "toy", "--list-presets")
    assert code == 0 and "small (default)" in out and "tiny:" in out
    code, out, _ = run(capsys, "train", "toy", "--preset", "tiny", "--set", "train.lr=0.5", "--print-config")
    assert code == 0 and "train.lr = 0.5  # float" in out and "model.num_layers = 1" in out


def test_toy_train_eval_resume_end_to_end(capsys, tmp_path):
    run_dir = tmp_path / "toy"
    code, out, err = run(capsys, "train", "toy", *TINY, "--out", str(run_dir), "--device", "cpu")
    assert code == 0, err
    assert f"run directory: {run_dir}" in out and "val_accuracy" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val_accuracy", "test_accuracy", "val_loss", "train_seconds", "steps"):
        assert key in metrics
    assert metrics["steps"] == 6
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["max_steps"] == 6 and config["model"]["num_layers"] == 1
    assert (run_dir / "metrics.jsonl").exists() and (run_dir / "checkpoints" / "best").exists()

    # eval from the run directory (its best checkpoint) reproduces the validation numbers
    code, out, err = run(capsys, "eval", "toy", "--checkpoint", str(run_dir), "--out", str(tmp_path / "ev"))
    assert code == 0, err
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["val_accuracy"] == pytest.approx(metrics["val_accuracy"])
    assert ev["test_accuracy"] == pytest.approx(metrics["test_accuracy"])

    # training into the same directory again needs --resume; --resume continues with the saved config
    code, _, err = run(capsys, "train", "toy", *TINY, "--out", str(run_dir))
    assert code == 2 and "--resume" in err
    code, out, err = run(capsys, "train", "toy", "--resume", "--set", "train.max_steps=9", "--no-progress",
                         "--out", str(run_dir))
    assert code == 0, err
    assert "resuming" in err and json.loads((run_dir / "metrics.json").read_text())["steps"] == 9

    # another task's eval refuses this checkpoint
    code, _, err = run(capsys, "eval", "vit", "--checkpoint", str(run_dir))
    assert code == 2 and "trained by task 'toy'" in err


def test_keyboard_interrupt_exits_130_and_says_what_is_left(capsys, monkeypatch, tmp_path):
    from attnlab.tasks import toy

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    real_train = toy.train
    monkeypatch.setattr(toy, "train", interrupted)
    code, _, err = run(capsys, "train", "toy", "--out", str(tmp_path / "r"))
    assert code == 130 and err.strip() == "interrupted before the first checkpoint: there is nothing to resume"
    assert not (tmp_path / "r").exists()  # nothing had started: no half-made run left behind

    def after_a_checkpoint(cfg, inputs, run_dir, **kw):
        real_train(cfg, inputs, run_dir, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(toy, "train", after_a_checkpoint)
    code, _, err = run(capsys, "train", "toy", *TINY, "--out", str(tmp_path / "r"))
    latest = (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    assert code == 130 and err.strip().endswith(f"interrupted: the last checkpoint ({latest}) is kept; run the same "
                                                "command with --resume to continue")


def test_console_script_prints_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "attnlab.cli", "train", "toy", "--set", "model.dim=wide",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "error: config key 'model.dim' expects int, got 'wide'\n"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ATTNLAB_DECODE", "gpu", "error: ATTNLAB_DECODE='gpu' is not one of auto, python, cpp; unset it for the default "
                              "(the C++ step where it can be built, else Python), or set it to python or cpp"),
    ("ATTNLAB_ATTENTION", "flash", "error: ATTNLAB_ATTENTION='flash' is not one of auto, torch, cpp; unset it for the "
                                   "default (the C++ kernel where it can be built, else PyTorch's), or set it to torch "
                                   "or cpp"),
    ("ATTNLAB_ADAMW", "fused", "error: ATTNLAB_ADAMW='fused' is not one of auto, torch, cpp; unset it for the default "
                               "(the C++ step where it can be built and matches torch's, else torch's), or set it to "
                               "torch or cpp"),
])
def test_a_bad_native_choice_stops_before_any_work(capsys, monkeypatch, tmp_path, name, value, message):
    # Checked when the command starts: a training run would otherwise fail at its first sample
    # (ATTNLAB_DECODE), its first forward (ATTNLAB_ATTENTION) or its first step (ATTNLAB_ADAMW).
    monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "train", "toy", *TINY, "--out", str(tmp_path / "run"))
    assert code == 2 and out == "" and err.strip() == message
    assert not (tmp_path / "run").exists()
