"""Budgets: the schedule follows steps, never the clock; time_limit is a safety cap that says so;
throughput and model-FLOPs utilisation are reported."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.device import gpu_peak_flops, model_flops_utilization
from attnlab.engine import fit, resolve_precision


def test_a_time_limit_that_does_not_fire_changes_nothing(tmp_path, tiny):
    """The learning-rate schedule depends on the step alone: the same run with and without a
    (generous) time cap gives bit-identical losses."""
    data = tiny.batches(tiny.data(64), 8)
    runs = {}
    for name, cap in (("free", None), ("capped", 3600.0)):
        torch.manual_seed(0)
        metrics = fit(tiny.net(), tiny.loss, data, None, tiny.cfg(epochs=2, time_limit=cap), tmp_path / name,
                      progress=False, tensorboard=False)
        runs[name] = (tiny.train_losses(tmp_path / name), metrics)
    assert runs["free"][0] == runs["capped"][0] and len(runs["free"][0]) == 16
    assert runs["capped"][1]["time_limit_reached"] == 0.0


def test_a_time_limit_that_fires_says_so_and_is_recorded(tmp_path, tiny, capsys):
    slow = lambda model, batch: (__import__("time").sleep(0.02), tiny.loss(model, batch))[1]  # noqa: E731
    metrics = fit(tiny.net(), slow, tiny.batches(tiny.data(400), 8), None, tiny.cfg(epochs=5, time_limit=0.2),
                  tmp_path, progress=False, tensorboard=False)
    assert metrics["time_limit_reached"] == 1.0
    assert 1 <= metrics["steps"] < 250  # 250 = 5 epochs of 50 steps: the cap stopped it
    assert f"stopped the run after {metrics['steps']} of 250 steps" in capsys.readouterr().err


def test_language_models_report_tokens_per_second(tmp_path):
    from attnlab.data.dialogue import DialogueDataset, lm_batches
    from attnlab.engine import TrainConfig
    from attnlab.losses import DialogueLoss
    from attnlab.models.gpt import DialogueGPT, GPTConfig

    torch.manual_seed(0)
    model = DialogueGPT(GPTConfig(vocab_size=20, context=8, dim=16, num_heads=2, num_layers=1, mlp_dim=32))
    ds = DialogueDataset([[2] + [3 + i % 10] * (2 + i % 6) for i in range(40)], context=8)  # 3..8 tokens
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_steps=1, log_every=1, device="cpu", precision="fp32")
    counted, padded = [], 0  # per step: (the loss's token count, the batch's real tokens counted here)

    def loss(model, batch):
        nonlocal padded
        out = DialogueLoss()(model, batch)
        counted.append((int(out[1]["tokens"]), int(batch["input_mask"].sum())))
        padded += batch["input_ids"].numel()
        return out

    fit(model, loss, lm_batches(ds, 8), None, cfg, tmp_path, progress=False, tensorboard=False)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "train_loss" in r]
    assert len(train) == 5 and all(r["tokens_per_sec"] > 0 and "examples_per_sec" not in r for r in train)
    assert len(counted) == 5 and all(tokens == real for tokens, real in counted)  # pads are not tokens
    # the 40 examples hold 3 + i % 6 tokens each: 40 * 3 + 7 * (0 + 1 + 2 + 3) + 6 * (4 + 5) = 216
    assert sum(tokens for tokens, _ in counted) == 216 == sum(len(x) for x in ds.examples) < padded
    assert all("mfu" not in r for r in train)  # on the CPU only against a measured peak, and the tests have none


def test_model_flops_utilization_is_nanogpts_formula(monkeypatch):
    from attnlab.models.gpt import DialogueGPT, GPTConfig

    model = DialogueGPT(GPTConfig(vocab_size=100, context=64, dim=32, num_heads=4, num_layers=2, mlp_dim=128))
    n = sum(p.numel() for p in model.parameters()) - 64 * 32  # without the position table
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 64
    cuda, bf16 = torch.device("cuda"), resolve_precision("bf16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert model_flops_utilization(model, 1e6, cuda, bf16) == pytest.approx(model.flops_per_token() * 1e6 / 989e12)
    assert model_flops_utilization(model, 1e6, torch.device("cpu"), bf16) is None  # no `bench peak` measured here
    assert model_flops_utilization(model, 1e6, cuda, resolve_precision("fp32", cuda)) is None
    assert gpu_peak_flops("NVIDIA H100 PCIe") == 756e12 and gpu_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert gpu_peak_flops("a GPU nobody knows") is None
