"""fit(): early stopping, best weights, time limit, precision, run-dir layout, device selection."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from attnlab.engine import autocast_context, fit, monitor_mode, resolve_precision, select_device
from attnlab.errors import AttnlabError


class ScriptedVal:
    """A loss whose validation value follows a script (training uses the real loss)."""

    def __init__(self, loss_fn, values):
        self.loss_fn, self.values, self.evals, self.last_training = loss_fn, list(values), 0, True

    def __call__(self, model, batch):
        loss, stats = self.loss_fn(model, batch)
        if not model.training:
            if self.last_training:
                self.evals += 1
            value = self.values[min(self.evals, len(self.values)) - 1]
            stats = {"loss_sum": value * stats["count"], "count": stats["count"]}
        self.last_training = model.training
        return loss, stats


def test_early_stopping_keeps_best_weights(tmp_path, tiny):
    scripted = ScriptedVal(tiny.loss, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    cfg = tiny.cfg(epochs=20, eval_every=2, patience=2)
    model = tiny.net()
    metrics = fit(model, scripted, tiny.batches(tiny.data(40), 8), tiny.batches(tiny.data(8, seed=1), 8),
                  cfg, tmp_path, meta={"task": "unit"}, progress=False, tensorboard=False)
    assert metrics["stopped_early"] == 1.0
    assert metrics["best_step"] == 4 and metrics["steps"] == 8  # evals at 2,4,6,8; 6 and 8 are worse
    assert metrics["val_loss"] == pytest.approx(0.5)
    best = torch.load(tmp_path / "checkpoints" / (tmp_path / "checkpoints" / "best").read_text().strip()
                      / "training.pt", weights_only=True)
    assert best["state"]["step"] == 4
    from attnlab.engine import load_checkpoint
    reference = tiny.net()
    load_checkpoint(tmp_path, which="best").load_into(reference)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)  # the model holds the BEST weights, not the last


def test_run_dir_layout_and_metrics(tmp_path, tiny):
    metrics = fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(32), 8), tiny.batches(tiny.data(8, seed=1), 8),
                  tiny.cfg(epochs=2, monitor="val_accuracy"), tmp_path, meta={"task": "unit"}, perplexity=True,
                  progress=False)
    for key in ("val_loss", "val_accuracy", "val_perplexity", "train_seconds", "steps", "epochs", "best_step"):
        assert key in metrics
    assert metrics["val_perplexity"] == pytest.approx(torch.tensor(metrics["val_loss"]).exp().item())
    assert metrics["steps"] == 8 and metrics["epochs"] == 2
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [4, 8]  # once per epoch
    assert all("items_per_sec" in r for r in records if "train_loss" in r)
    assert any(p.name.startswith("events") for p in (tmp_path / "tb").iterdir())
    meta = json.loads(next((tmp_path / "checkpoints").glob("step-*/meta.json")).read_text())
    assert meta["task"] == "unit" and meta["train"]["epochs"] == 2
    with pytest.raises(AttnlabError, match="--resume"):  # refuses to overwrite a run
        fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(32), 8), None, tiny.cfg(), tmp_path, progress=False)


def test_time_limit_and_max_steps_stop_cleanly(tmp_path, tiny):
    import time

    def slow(model, batch):
        time.sleep(0.05)
        return tiny.loss(model, batch)

    metrics = fit(tiny.net(), slow, tiny.batches(tiny.data(400), 8), None, tiny.cfg(epochs=5, time_limit=0.4),
                  tmp_path / "t", progress=False, tensorboard=False)
    assert 1 <= metrics["steps"] < 30 and metrics["train_seconds"] >= 0.4
    assert (tmp_path / "t" / "checkpoints" / "latest").exists()
    metrics = fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(400), 8), None, tiny.cfg(max_steps=7, grad_accum=2),
                  tmp_path / "m", progress=False, tensorboard=False)
    assert metrics["steps"] == 7 and metrics["epochs"] == pytest.approx(14 / 50)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_trains_on_cpu(tmp_path, tiny, precision):
    metrics = fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(32), 8), tiny.batches(tiny.data(8), 8),
                  tiny.cfg(epochs=1, precision=precision), tmp_path, progress=False, tensorboard=False)
    assert metrics["steps"] == 4 and metrics["val_loss"] == metrics["val_loss"]  # not NaN


def test_device_and_precision_resolution():
    cpu = select_device("cpu")
    assert cpu.type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto").type in ("cpu", "mps")
        with pytest.raises(AttnlabError, match="--device cpu"):
            select_device("cuda")
    assert resolve_precision("fp32", cpu).autocast_dtype is None
    assert resolve_precision("bf16", cpu).autocast_dtype is torch.bfloat16
    assert resolve_precision("fp16", cpu).use_scaler
    assert resolve_precision("auto", cpu).name in ("fp32", "bf16")
    with autocast_context(cpu, torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    with autocast_context(cpu, None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32


def test_monitor_modes_and_bad_config(tmp_path, tiny):
    assert monitor_mode("val_loss") == "min" and monitor_mode("val_perplexity") == "min"
    assert monitor_mode("val_accuracy") == "max"
    with pytest.raises(AttnlabError, match="monitor"):
        monitor_mode("val_f1")
    with pytest.raises(AttnlabError, match="grad_accum"):
        fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(8), 8), None, tiny.cfg(grad_accum=0), tmp_path)
    with pytest.raises(AttnlabError, match="train.monitor"):  # stats without 'correct' have no accuracy
        fit(tiny.net(), lambda m, b: (tiny.loss(m, b)[0], {"loss_sum": 1.0, "count": 1}),
            tiny.batches(tiny.data(8), 8), tiny.batches(tiny.data(8), 8), tiny.cfg(monitor="val_accuracy"),
            tmp_path / "x", progress=False, tensorboard=False)


def test_without_tensorboard_logging_still_works(tmp_path, tiny, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    metrics = fit(tiny.net(), tiny.loss, tiny.batches(tiny.data(16), 8), None, tiny.cfg(epochs=1), tmp_path,
                  progress=False)
    assert metrics["steps"] == 2 and (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tb").exists()
    assert "TensorBoard logging disabled" in capsys.readouterr().err


def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch):
    import attnlab.engine.device as device

    cpu = select_device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert resolve_precision("bf16", cpu).autocast_dtype is torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_precision("bf16", cpu)
