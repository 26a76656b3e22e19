"""`attnlab train`: the presets sized for a GPU say so, in --list-presets and when they start on a CPU."""

from __future__ import annotations

import pytest

from attnlab import cli
from attnlab.config import cpu_counterpart, presets
from attnlab.tasks import TASKS

# a few seconds on a CPU: the GPU presets' data and recipe, at toy sizes
TOY_GPT = ["--set", "model.dim=32", "--set", "model.num_heads=2", "--set", "model.num_layers=1",
           "--set", "model.mlp_dim=64", "--set", "model.context=32", "--set", "train.batch_size=4",
           "--set", "train.max_steps=2", "--set", "train.eval_every=2", "--set", "data.max_val_tokens=500",
           "--set", "sample.num_tokens=3", "--no-progress", "--device", "cpu"]
NOTE = "is sized for a GPU, and this run is on the CPU"


def test_every_gpu_preset_names_a_cpu_preset_of_the_same_task():
    found = {}
    for name in TASKS.names():
        cls = TASKS.load(name).CONFIG
        for gpu, cpu in getattr(cls, "GPU_PRESETS", {}).items():
            assert gpu in presets(cls) and cpu in presets(cls) and cpu_counterpart(cls, gpu) == cpu, (name, gpu)
            found[gpu] = cpu
        assert cpu_counterpart(cls, "tiny") is None and cpu_counterpart(cls, None) is None
    assert found == {"char-gpu": "char-cpu", "cifar10-gpu": "cifar10-cpu"}


def test_list_presets_marks_the_gpu_ones(capsys):
    assert cli.main(["train", "gpt", "--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("char-gpu (for a GPU; on a CPU, char-cpu): ") for line in lines)
    assert any(line.startswith("char-cpu: ") for line in lines)


@pytest.mark.parametrize("preset, noted", [("char-gpu", True), ("char-cpu", False)])
def test_a_gpu_preset_starting_on_the_cpu_says_so_once_and_names_the_cpu_one(preset, noted, tmp_path, capsys):
    assert cli.main(["train", "gpt", "--preset", preset, *TOY_GPT, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    expected = (f"note: --preset {preset} {NOTE}, where its full run takes many hours "
                "(--preset char-cpu is the one for a CPU)")
    assert err.count(NOTE) == (1 if noted else 0) and (expected in err) == noted, err


def test_resuming_a_gpu_run_on_the_cpu_says_nothing_about_the_preset(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "gpt", "--preset", "char-gpu", *TOY_GPT, "--out", run]) == 0
    capsys.readouterr()
    args = ["train", "gpt", "--preset", "char-gpu", *TOY_GPT, "--set", "train.max_steps=3", "--out", run, "--resume"]
    assert cli.main(args) == 0
    assert NOTE not in capsys.readouterr().err
