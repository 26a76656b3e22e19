"""Every task of the registry honours the one task contract (DEVELOPERS.md, "Tasks"): its CONFIG and
INPUTS, the signatures of `train`, `evaluate` and `load_model`, a few steps of its `tiny` preset,
a trained model that loads in eval mode on the CPU, an evaluation that reproduces the run's own
metrics, and `load_trained` finding the task from the checkpoint alone."""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from attnlab.config import build_config, config_from_dict, presets
from attnlab.engine import TrainConfig
from attnlab.errors import AttnlabError
from attnlab.tasks import TASKS, load_trained

P = inspect.Parameter
POSITIONAL, KEYWORD = P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY
EMPTY = P.empty

# (name, kind, default) of each parameter, in order (DEVELOPERS.md and attnlab/tasks/__init__.py).
SIGNATURES = {
    "train": [("cfg", POSITIONAL, EMPTY), ("inputs", POSITIONAL, EMPTY), ("run_dir", POSITIONAL, EMPTY),
              ("resume", KEYWORD, False), ("progress", KEYWORD, None), ("allow_changed_data", KEYWORD, False)],
    "evaluate": [("checkpoint", POSITIONAL, EMPTY), ("inputs", POSITIONAL, EMPTY), ("device", KEYWORD, "auto")],
    "load_model": [("checkpoint", POSITIONAL, EMPTY)],
}

STEPS = 3  # at most this many optimizer steps per tiny run: a validation, a checkpoint and a best pick


@pytest.mark.parametrize("task", TASKS.names())
def test_config_and_inputs_are_dataclasses(task):
    module = TASKS.load(task)
    cfg_cls, inputs_cls = module.CONFIG, module.INPUTS
    assert dataclasses.is_dataclass(cfg_cls) and isinstance(cfg_cls, type)
    assert typing.get_type_hints(cfg_cls)["train"] is TrainConfig
    table = presets(cfg_cls)
    assert "tiny" in table and cfg_cls.DEFAULT_PRESET in table
    for name in table:  # every preset is a valid config (ranges and each section's check())
        assert isinstance(build_config(cfg_cls, name).train, TrainConfig), name
    for name in getattr(module, "MODELS", ()):  # --model NAME also picks the preset NAME
        assert name in table, name
    assert dataclasses.is_dataclass(inputs_cls) and isinstance(inputs_cls, type)
    for f in dataclasses.fields(inputs_cls):  # each field is a CLI flag with its help, optional or defaulted
        assert isinstance(f.metadata.get("help"), str) and f.metadata["help"], f.name
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
    inputs_cls()  # so an INPUTS with no flags given can be built


@pytest.mark.parametrize("task", TASKS.names())
@pytest.mark.parametrize("function", list(SIGNATURES))
def test_signature(task, function):
    params = inspect.signature(getattr(TASKS.load(task), function)).parameters.values()
    assert [(p.name, p.kind, p.default) for p in params] == SIGNATURES[function]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, task_inputs) -> Callable[[str], tuple[Path, dict[str, float]]]:
    """``trained(task) -> (run_dir, metrics)``: a few steps of the task's tiny preset on the CPU,
    through ``train`` itself; each task trains once per module."""
    runs: dict[str, tuple[Path, dict[str, float]]] = {}

    def get(task: str) -> tuple[Path, dict[str, float]]:
        if task not in runs:
            module = TASKS.load(task)
            cfg = build_config(module.CONFIG, "tiny", [f"train.max_steps={STEPS}", "train.device=cpu"])
            run_dir = tmp_path_factory.mktemp(task)
            metrics = module.train(cfg, module.INPUTS(**task_inputs[task]), run_dir, progress=False)
            runs[task] = run_dir, metrics
        return runs[task]

    return get


@pytest.mark.parametrize("task", TASKS.names())
def test_tiny_preset_trains(task, trained):
    run_dir, metrics = trained(task)
    numbers = {k: v for k, v in metrics.items() if not k.endswith("_signature")}  # sacreBLEU's are text
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers.values()), metrics
    assert 1 <= metrics["best_step"] <= metrics["steps"] <= STEPS  # vit's tiny preset is 2 steps in all
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    assert any(k in metrics for k in ("val_loss", "test_loss"))
    assert (run_dir / "checkpoints" / "best").exists() and (run_dir / "config.json").is_file()


def model_of(task: str, run_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    return TASKS.load(task).load_model(run_dir)


@pytest.mark.parametrize("task", TASKS.names())
def test_load_model_gives_an_eval_mode_model_on_the_cpu(task, trained):
    run_dir, _ = trained(task)
    model, meta = model_of(task, run_dir)
    assert isinstance(model, torch.nn.Module)
    assert [name for name, m in model.named_modules() if m.training] == []
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and {t.device.type for t in tensors} == {"cpu"}
    assert meta["task"] == task
    assert isinstance(config_from_dict(TASKS.load(task).CONFIG, meta["config"]).train, TrainConfig)  # the run's config


def same_value(key: str, run: float, again: float) -> bool:
    """Accuracies and counts are ratios of whole numbers: equal exactly. A loss (and its perplexity)
    is a sum of float32 batch losses; the same weights on the same batches on the same CPU give the
    same bits (what every task does now), and rel=1e-6 (a few float32 roundings, ~1.2e-7 each) leaves
    room only for a reordered sum, never for another split, batch or checkpoint."""
    if "loss" in key or "perplexity" in key or "ece" in key:
        return again == pytest.approx(run, rel=1e-6)
    return again == run


@pytest.mark.parametrize("task", TASKS.names())
def test_evaluate_reproduces_the_runs_metrics(task, trained, task_inputs):
    run_dir, metrics = trained(task)
    module = TASKS.load(task)
    again = module.evaluate(run_dir, module.INPUTS(**task_inputs[task]), device="cpu")
    shared = sorted(k for k in again if k in metrics and k != "step")
    # each task evaluates the best checkpoint on its validation data (toy, the LMs, text without a
    # test file) or its test data (vit): the metrics the run reported for that split
    assert {f"{split}_{m}" for split in ("val", "test") for m in ("loss", "accuracy")} & set(shared), shared
    differ = {k: (metrics[k], again[k]) for k in shared if not same_value(k, metrics[k], again[k])}
    assert differ == {}


@pytest.mark.parametrize("task", TASKS.names())
def test_load_trained_dispatches_to_the_task(task, trained):
    run_dir, _ = trained(task)
    found, model, meta = load_trained(run_dir)
    direct, direct_meta = model_of(task, run_dir)
    assert found == task and type(model) is type(direct) and meta == direct_meta
    ours, theirs = model.state_dict(), direct.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(t, theirs[k]) for k, t in ours.items())
    others = tuple(t for t in TASKS.names() if t != task)
    with pytest.raises(AttnlabError, match=f"is from task '{task}', not a trained model \\({', '.join(others)}\\)"):
        load_trained(run_dir, tasks=others)
    other = others[0]
    with pytest.raises(AttnlabError, match=f"was trained by task '{task}', not '{other}'"):
        TASKS.load(other).load_model(run_dir)
