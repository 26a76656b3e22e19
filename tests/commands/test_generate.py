"""End to end: `attnlab train gpt --preset tiny`, then `attnlab generate` / `eval` from its checkpoint."""

import json
from pathlib import Path

import pytest

from attnlab.cli import main
from attnlab.data.shakespeare import load_text


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: a second thread only adds synchronisation (badly so on a busy machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny GPT trained for a few steps on the first 20 kB of Tiny Shakespeare."""
    root = tmp_path_factory.mktemp("gpt")
    data = root / "small.txt"
    data.write_text(load_text()[:20000], encoding="utf-8")
    run = root / "run"
    code = main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=6", "--data", str(data),
                 "--out", str(run), "--no-progress"])
    assert code == 0
    return run, data


def test_train_writes_metrics_and_generate_prints_a_continuation(trained, capsys):
    run, _ = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["val_perplexity"] > 1
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--prompt", "First Citizen: you", "--num-tokens", "7"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("first citizen : you ")
    assert len(out.split()) == 4 + 7
    # the cache changes nothing in the greedy output; a seed makes sampling reproducible
    assert main(["generate", "--checkpoint", str(run), "--prompt", "First Citizen: you", "--num-tokens", "7",
                 "--no-cache"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == out
    for _ in range(2):
        assert main(["generate", "--checkpoint", str(run), "--num-tokens", "5", "--temperature", "1",
                     "--top-p", "0.9", "--seed", "3"]) == 0
    a, b = capsys.readouterr().out.strip().splitlines()[-2:]
    assert a == b


def test_several_prompts_are_one_batch_and_each_line_is_that_prompt_alone(trained, tmp_path, capsys):
    run, _ = trained
    texts = ["First Citizen: you", "", "the king"]
    alone = []
    for text in texts:
        capsys.readouterr()
        assert main(["generate", "--checkpoint", str(run), "--prompt", text, "--num-tokens", "6", "--greedy"]) == 0
        alone.append(capsys.readouterr().out.strip("\n").splitlines()[-1])
    args = [a for text in texts for a in ("--prompt", text)]
    assert main(["generate", "--checkpoint", str(run), *args, "--num-tokens", "6", "--greedy"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip("\n").splitlines()[-3:] == alone
    assert "(6 tokens for each of 3 prompts in" in captured.err
    (tmp_path / "prompts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["generate", "--checkpoint", str(run), "--prompts", str(tmp_path / "prompts.txt"),
                 "--num-tokens", "6", "--greedy"]) == 0
    assert capsys.readouterr().out.strip("\n").splitlines()[-3:] == alone
    assert main(["generate", "--checkpoint", str(run), "--prompts", str(tmp_path / "none.txt")]) == 2
    assert "error: cannot read --prompts" in capsys.readouterr().err
    both = ["--prompt", "a", "--prompts", str(tmp_path / "prompts.txt")]
    assert main(["generate", "--checkpoint", str(run), *both]) == 2
    assert "error: --prompt and --prompts both give prompts; pass one of them" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--temperature", "0.5"], ["--top-k", "5"], ["--top-p", "0.9"]])
def test_greedy_with_a_sampling_option_is_refused(trained, capsys, option):
    run, _ = trained
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--greedy", *option]) == 2
    err = capsys.readouterr().err
    assert "--greedy" in err and option[0] in err and "Traceback" not in err


def test_the_start_line_says_steps_time_cap_device_and_data(trained, tmp_path, capsys):
    _, data = trained
    capsys.readouterr()
    assert main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=2", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "training 2 steps" in err and "no time cap" in err and "on cpu" in err
    assert "bundled Tiny Shakespeare (" in err and "tinyshakespeare.txt)" in err
    assert main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=2", "--set", "train.time_limit=600",
                 "--data", str(data), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "time cap 600 s" in err and str(data) in err


def test_eval_reproduces_the_validation_perplexity(trained, tmp_path, capsys):
    run, data = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert main(["eval", "gpt", "--checkpoint", str(run), "--data", str(data), "--out", str(tmp_path / "ev")]) == 0
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["val_perplexity"] == pytest.approx(metrics["val_perplexity"], rel=1e-4)


def _checkpoint_dir(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "best").read_text().strip()


def test_corrupted_or_mismatched_checkpoints_give_a_clear_error(trained, tmp_path, capsys):
    import shutil

    run, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(_checkpoint_dir(run), bad)
    # 1) truncated weights
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(bad), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "damaged" in err and "Traceback" not in err
    # 2) meta.json that no longer matches the weights (another model size)
    shutil.rmtree(bad)
    shutil.copytree(_checkpoint_dir(run), bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["config"]["model"]["dim"] = 64
    (bad / "meta.json").write_text(json.dumps(meta))
    assert main(["generate", "--checkpoint", str(bad)]) == 2
    assert "does not match" in capsys.readouterr().err
    # 3) a checkpoint of a task that is not a language model
    meta["task"] = "toy"
    (bad / "meta.json").write_text(json.dumps(meta))
    assert main(["generate", "--checkpoint", str(bad)]) == 2
    assert "not a language model" in capsys.readouterr().err
    # 4) nothing there
    assert main(["generate", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_lstm_baseline_trains_and_generates_through_the_cli(trained, tmp_path, capsys):
    _, data = trained
    run = tmp_path / "lstm"
    assert main(["train", "lstm-lm", "--preset", "tiny", "--set", "train.max_steps=4", "--data", str(data),
                 "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--prompt", "First Citizen:", "--num-tokens", "5"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()[-1].split()) == 3 + 5


def test_bench_generate_and_lab_generation_time_a_trained_checkpoint(trained, tmp_path, capsys):
    run, _ = trained
    capsys.readouterr()
    assert main(["bench", "generate", "--checkpoint", str(run), "--num-tokens", "40", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "identical tokens: yes" in out and "context 32" in out  # 40 > 32: the window jumps too
    assert main(["lab", "generation", "--checkpoint", str(run), "--lengths", "4", "8", "--tokens", "3",
                 "--repeats", "1", "--out", str(tmp_path / "lab")]) == 0
    doc = json.loads((tmp_path / "lab" / "generation.json").read_text())
    assert doc["config"]["weights"] == str(run) and doc["config"]["dim"] == 32
    assert doc["headline"]["greedy_outputs_identical"] is True
    assert main(["lab", "generation", "--checkpoint", str(run), "--lengths", "40", "--out", str(tmp_path)]) == 2
    assert "more than the context 32" in capsys.readouterr().err


def test_bad_data_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x.txt").write_bytes(b"\xff\xfe\x00bad")  # a UTF-16 byte-order mark: named as such
    assert main(["train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "x.txt"),
                 "--out", str(tmp_path / "r")]) == 2
    assert "looks like UTF-16 text; convert it to UTF-8" in capsys.readouterr().err
