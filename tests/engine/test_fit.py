"""fit(): early stopping, best weights, time limit, precision, run-dir layout, device selection."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from attnlab.device import Precision
from attnlab.engine import autocast_context, fit, monitor_mode, resolve_precision, select_device
from attnlab.errors import AttnlabError


class ScriptedVal:
    """A loss whose validation value follows a script (training uses the real loss). Calls
    before the first training step (the engine's check of train.monitor) do not count."""

    def __init__(self, loss_fn, values):
        self.loss_fn, self.values, self.evals, self.last_training = loss_fn, list(values), 0, False

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
    assert all(r["examples_per_sec"] > 0 for r in records if "train_loss" in r)
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


def _precision_run(tmp_path, tiny, precision):
    """One epoch (4 steps) of the tiny set-up in ``precision``; same seed, initialisation and data."""
    torch.manual_seed(0)
    model = tiny.net(dropout=0.0)  # no dropout: the runs differ only in their arithmetic
    run_dir = tmp_path / precision
    metrics = fit(model, tiny.loss, tiny.batches(tiny.data(32), 8), tiny.batches(tiny.data(8, seed=1), 8),
                  tiny.cfg(epochs=1, precision=precision), run_dir, progress=False, tensorboard=False)
    training = torch.load(run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
                          / "training.pt", weights_only=True)
    return metrics, tiny.train_losses(run_dir), training["scaler"]


# Tolerances for the reduced-precision runs, relative to the fp32 run. Autocast rounds the inputs
# of the matmuls to bf16 (8 significant bits: unit roundoff 2^-8 ~ 3.9e-3) or fp16 (11 bits:
# 2^-11 ~ 4.9e-4), accumulating in fp32; LayerNorm and the cross-entropy stay in fp32. A loss of
# about 1 then moves by a few units of roundoff, and the 4 AdamW steps (lr <= 1e-2, updates
# normalised by the gradient's own scale) do not amplify it. On this CPU the largest relative
# difference seen is 1.7e-3 (bf16) and 3.2e-4 (fp16), under one unit of roundoff; the bounds
# below are about 5 units of roundoff (8-12x what was seen), so a different CPU's kernels pass, while
# a reduced-precision run that trained a different model (or diverged, or lost its scaler) fails.
REL_TOL = {"bf16": 2e-2, "fp16": 2.5e-3}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_matches_an_fp32_run(tmp_path, tiny, precision):
    ref_metrics, ref_losses, ref_scaler = _precision_run(tmp_path, tiny, "fp32")
    metrics, losses, scaler = _precision_run(tmp_path, tiny, precision)
    assert metrics["steps"] == ref_metrics["steps"] == 4
    assert sorted(losses) == sorted(ref_losses) == [1, 2, 3, 4]  # log_every=1: one train loss per step
    for step, ref in ref_losses.items():
        assert losses[step] == pytest.approx(ref, rel=REL_TOL[precision]), step
    assert metrics["val_loss"] == pytest.approx(ref_metrics["val_loss"], rel=REL_TOL[precision])
    assert metrics["val_loss"] != ref_metrics["val_loss"]  # autocast did run: the numbers are not fp32's
    assert ref_scaler == {}  # fp32: the scaler is a disabled no-op (an empty state)
    if precision == "fp16":
        # The scaler was on (a disabled one saves an empty state) and still at its initial 2^16: no step
        # overflowed, so none backed off; the losses above match fp32's, so every step was taken.
        assert scaler["scale"] == 2.0 ** 16
    else:
        assert scaler == {}  # bf16 has fp32's exponent range: no loss scaling


def test_device_and_precision_resolution():
    cpu = select_device("cpu")
    assert cpu.type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto").type in ("cpu", "mps")
        with pytest.raises(AttnlabError, match="--device cpu"):
            select_device("cuda")
    assert resolve_precision("fp32", cpu) == Precision("fp32", None, False)
    assert resolve_precision("bf16", cpu) == Precision("bf16", torch.bfloat16, False)
    assert resolve_precision("fp16", cpu) == Precision("fp16", torch.float16, True)
    # auto on the CPU is plain fp32 (README "The training engine": bf16 autocast does not pay there)
    assert resolve_precision("auto", cpu) == Precision("fp32", None, False)
    with pytest.raises(AttnlabError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)
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
    import attnlab.device as device

    cpu = select_device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert resolve_precision("bf16", cpu).autocast_dtype is torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_precision("bf16", cpu)


def test_data_ending_inside_an_accumulation_group_still_steps(tmp_path, tiny):
    """5 batches with grad_accum=2: groups of 2, 2 and 1 micro-batches, so 3 optimizer steps per
    epoch. Each step's gradient is the mean over its own group (the last one divides by 1, not 2),
    and the weights equal a hand-written AdamW loop's bit for bit (fp32 on the CPU)."""
    import copy

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from attnlab.engine.loop import micro_batches
    from attnlab.engine.schedule import WarmupCosine, make_optimizer

    cfg = tiny.cfg(epochs=2, grad_accum=2, grad_clip=None)
    train = tiny.batches(tiny.data(40), 8)
    assert len(train) == 5
    plan = [(mb.group_size, mb.ends_step, mb.ends_epoch) for mb in micro_batches(train, cfg)]
    epoch = [(2, False, False), (2, True, False), (2, False, False), (2, True, False), (1, True, True)]
    assert plan == epoch * 2

    torch.manual_seed(0)
    model = tiny.net(dropout=0.0)
    initial = copy.deepcopy(model)
    seen = []  # (weights, gradients) at each optimizer step, just before it

    def record(optimizer, args, kwargs):
        seen.append(([p.detach().clone() for p in model.parameters()],
                     [p.grad.detach().clone() for p in model.parameters()]))

    handle = register_optimizer_step_pre_hook(record)
    try:
        metrics = fit(model, tiny.loss, train, None, cfg, tmp_path, progress=False, tensorboard=False)
    finally:
        handle.remove()
    assert metrics["steps"] == 6 and len(seen) == 6 and metrics["epochs"] == 2.0

    def grads(weights, batches):
        """The accumulated gradient of ``batches`` at ``weights``, each loss divided by the group size."""
        net = copy.deepcopy(initial)
        with torch.no_grad():
            for p, w in zip(net.parameters(), weights):
                p.copy_(w)
        for batch in batches:
            (tiny.loss(net, batch)[0] / len(batches)).backward()
        return [p.grad for p in net.parameters()]

    epoch0 = list(train.iter_epoch(0, cfg.seed))
    for step, group in ((0, epoch0[0:2]), (1, epoch0[2:4]), (2, epoch0[4:5])):
        weights, got = seen[step]
        for g, ref in zip(got, grads(weights, group)):
            assert torch.equal(g, ref), step  # step 2: the lone batch's full gradient, not half of it

    # the whole run by hand: the same AdamW groups and schedule, the same groups of batches
    ref = initial
    opt = make_optimizer(ref, cfg.lr, cfg.weight_decay)
    schedule = WarmupCosine(opt, lr=cfg.lr, total_steps=6, warmup_steps=cfg.warmup_steps,
                            min_lr_ratio=cfg.min_lr_ratio)
    step = 0
    for e in range(2):
        batches = list(train.iter_epoch(e, cfg.seed))
        for group in (batches[0:2], batches[2:4], batches[4:5]):
            schedule.apply(step)
            for batch in group:
                (tiny.loss(ref, batch)[0] / len(group)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_micro_batches_carry_their_position_and_iterating_changes_nothing(tiny):
    """Each micro-batch says where the data stands after it (the step records its last one's);
    starting from any step's position yields exactly the micro-batches left after that step."""
    from attnlab.engine.loop import micro_batches

    cfg = tiny.cfg(epochs=2, grad_accum=2)
    train = tiny.batches(tiny.data(40), 8)  # 5 batches: steps end after batches 2, 4 and 5 of each epoch
    whole = list(micro_batches(train, cfg))
    assert [(mb.epoch, mb.index_in_epoch) for mb in whole] == [(e, i) for e in range(2) for i in range(5)]
    ends = [k for k, mb in enumerate(whole) if mb.ends_step]
    assert [whole[k].next_position for k in ends] == [(0, 2), (0, 4), (1, 0), (1, 2), (1, 4), (2, 0)]
    for k in ends:
        rest = list(micro_batches(train, cfg, whole[k].next_position))
        assert [mb[1:] for mb in rest] == [mb[1:] for mb in whole[k + 1:]]
        assert all(torch.equal(a.batch["x"], b.batch["x"]) for a, b in zip(rest, whole[k + 1:]))


def test_a_diverged_run_stops_with_the_fix_and_keeps_its_last_good_checkpoint(tmp_path, tiny):
    """A NaN training loss is one clear error naming the step and the setting to lower; the
    checkpoint written before it stays the run's latest."""
    steps = {"n": 0}

    def poisoned(model, batch):
        loss, stats = tiny.loss(model, batch)
        if model.training:
            steps["n"] += 1
            if steps["n"] > 4:  # from step 5 on
                loss = loss * float("nan")
                stats = {**stats, "loss_sum": float("nan")}
        return loss, stats

    cfg = tiny.cfg(epochs=4, eval_every=2, log_every=1)
    with pytest.raises(AttnlabError, match=r"training diverged: the train loss is nan at step 5; lower the "
                                           r"learning rate \(--set train.lr=...\)"):
        fit(tiny.net(), poisoned, tiny.batches(tiny.data(32), 8), tiny.batches(tiny.data(8, seed=1), 8),
            cfg, tmp_path, meta={"task": "unit"}, progress=False, tensorboard=False)
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert torch.load(tmp_path / "checkpoints" / latest / "training.pt", weights_only=True)["state"]["step"] == 4


def test_a_training_log_with_garbage_lines_is_read_around_them(tmp_path):
    from attnlab.engine.logging import METRICS_LOG, read_records

    (tmp_path / METRICS_LOG).write_bytes(b'{"step": 1, "train_loss": 2.0}\n\xff\xfe\x00garbage\n[1, 2]\n'
                                         b'{"step": 2, "train_loss": 1.5}\n{"step": 3, "tr')
    assert read_records(tmp_path) == [{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.5}]


def test_flat_adamw_trains_the_same_weights_as_torch_adamw_and_lets_go_of_them(tmp_path, tiny, monkeypatch):
    """fit's optimizer is FlatAdamW (one buffer per group of small tensors); the weights are those
    of torch's own AdamW, bit for bit, and after fit each parameter owns its storage again."""
    from safetensors.torch import save_model

    import attnlab.engine.run as run_module
    from attnlab.engine.schedule import param_groups

    def run(name):
        torch.manual_seed(0)
        model = tiny.net()
        fit(model, tiny.loss, tiny.batches(tiny.data(48), 8), tiny.batches(tiny.data(8, seed=1), 8),
            tiny.cfg(epochs=2, grad_clip=0.05), tmp_path / name, meta={"task": "unit"}, progress=False,
            tensorboard=False)
        return model

    flat = run("flat")
    assert all(p.untyped_storage().nbytes() == p.numel() * 4 for p in flat.parameters())
    save_model(flat, str(tmp_path / "weights.safetensors"))  # refuses views of a shared buffer

    class Plain(torch.optim.AdamW):  # torch's AdamW, with the one method fit adds to it
        def release(self):
            pass

    monkeypatch.setattr(run_module, "make_optimizer", lambda model, lr, wd, decay_embeddings, beta2: Plain(
        param_groups(model, wd, decay_embeddings=decay_embeddings), lr=lr, betas=(0.9, beta2)))
    plain = run("plain")
    for (name, a), b in zip(flat.named_parameters(), plain.parameters()):
        assert torch.equal(a, b), name
    torch.manual_seed(0)
    assert not torch.equal(flat.hidden.weight, tiny.net().hidden.weight)  # it trained
