"""`attnlab bench peak` at a tiny size, the shapes it reads from the presets, and the MFU that
training reports on the CPU against the saved peak (only for the same CPU and thread count)."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.bench import peak
from attnlab.cli import main
from attnlab.device import Precision, cpu_name, cpu_peak_flops, model_flops_utilization, peak_path

CPU = torch.device("cpu")
FP32 = Precision("fp32", None, False)
BF16 = Precision("bf16", torch.bfloat16, False)
TINY = ["--rows", "8", "--square", "16", "--array-mib", "0.25", "--repeats", "3", "--min-ms", "1"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test here has its own empty cache directory: nothing of the user's is read or written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    yield tmp_path / "cache"
    torch.set_num_threads(n)  # --threads changes torch's global thread count


class Model:
    """Anything that states its training FLOPs per token."""

    def flops_per_token(self) -> float:
        return 3.0e6


def save_peak(**fields) -> None:
    doc = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "peak_flops": {"fp32": 2.0e11, "bf16": 8.0e11}}
    peak_path().parent.mkdir(parents=True, exist_ok=True)
    peak_path().write_text(json.dumps({**doc, **fields}))


def test_peak_path_follows_the_cache_directory(cache):
    assert peak_path() == cache / "attnlab" / "peak.json"


def test_measure_reports_every_shape_and_the_bandwidth_with_spreads():
    shapes = [peak.Shape("a", 8, 16, 32), peak.Shape("b", 4, 8, 8)]
    res = peak.measure(shapes=shapes, dtypes=["fp32"], array_mib=0.25, repeats=3, min_ms=1)
    assert res["cpu"] == cpu_name() and res["threads"] == torch.get_num_threads()
    assert [(r["name"], r["m"], r["k"], r["n"]) for r in res["rows"]] == [("a", 8, 16, 32), ("b", 4, 8, 8)]
    for stats in [r["gflops"]["fp32"] for r in res["rows"]] + list(res["bandwidth_gbs"].values()):
        assert set(stats) == {"median", "min", "max", "samples"} and len(stats["samples"]) == 3
        assert 0 < stats["min"] <= stats["median"] <= stats["max"]
    assert set(res["bandwidth_gbs"]) == {"copy", "triad"}
    assert res["peak_flops"] == {"fp32": max(r["gflops"]["fp32"]["median"] for r in res["rows"]) * 1e9}


def test_flops_of_a_shape():
    assert peak.Shape("x", 3, 5, 7).flops == 2 * 3 * 5 * 7


def test_model_shapes_are_the_presets_linear_layers():
    shapes = {s.name: (s.m, s.k, s.n) for s in peak.model_shapes()}
    # default GPT: batch 32 x context 256 tokens, width 128, 4 heads, MLP 512, vocabulary 6,187
    assert shapes["GPT default: qkv"] == (32 * 256, 128, 3 * 128)
    assert shapes["GPT default: mlp out"] == (32 * 256, 512, 128)
    assert shapes["GPT default: LM head"] == (32 * 256, 128, 6187)
    # char-cpu: batch 12 x context 64, width 128, MLP 512, 65 characters
    assert shapes["GPT char-cpu: mlp in"] == (12 * 64, 128, 512)
    assert shapes["GPT char-cpu: LM head"] == (12 * 64, 128, 65)
    # cifar10-cpu ViT: batch 128 x (a 4x4 grid + the class token), width 128, 4 heads of 32, MLP 256
    assert shapes["ViT cifar10-cpu: qkv"] == (128 * 17, 128, 3 * 4 * 32)
    assert shapes["ViT cifar10-cpu: attn out"] == (128 * 17, 128, 128)
    assert shapes["ViT cifar10-cpu: mlp in"] == (128 * 17, 128, 256)
    assert len(shapes) == 14


def test_bench_peak_tiny_prints_the_table_and_saves_only_when_asked(cache, capsys):
    assert main(["bench", "peak", *TINY, "--no-bf16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 thread," in out and "fp32 GFLOP/s" in out and "bf16" not in out
    assert "GPT default: qkv" in out and "square reference" in out and "memory bandwidth" in out
    assert "peak not saved (--rows shrank the shapes)" in out and "load average" in out
    assert not peak_path().exists()  # --rows: a quick look is never the saved peak

    assert main(["bench", "peak", *TINY, "--no-bf16", "--threads", "1", "--save", str(peak_path())]) == 0
    assert f"saved the peak to {peak_path()}" in capsys.readouterr().out
    saved = json.loads(peak_path().read_text())
    assert saved["cpu"] == cpu_name() and saved["threads"] == 1 and saved["load"]["threads"] == 1
    assert cpu_peak_flops("fp32") == saved["peak_flops"]["fp32"]  # at 1 thread, as measured
    assert cpu_peak_flops("bf16") is None  # not measured
    torch.set_num_threads(2)
    assert cpu_peak_flops("fp32") is None  # another thread count


def test_bench_peak_json_to_stdout(capsys):
    assert main(["bench", "peak", *TINY, "--no-bf16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["benchmark"] == "peak" and set(res["load"]) == {"load_before", "load_after", "threads", "busy"}
    assert not peak_path().exists()


def test_cpu_mfu_is_the_hand_computation_against_the_saved_peak():
    save_peak()
    assert model_flops_utilization(Model(), 5000.0, CPU, FP32) == pytest.approx(3.0e6 * 5000 / 2.0e11)
    assert model_flops_utilization(Model(), 5000.0, CPU, BF16) == pytest.approx(3.0e6 * 5000 / 8.0e11)
    assert model_flops_utilization(Model(), 5000.0, CPU, Precision("fp16", torch.float16, True)) is None
    assert model_flops_utilization(object(), 5000.0, CPU, FP32) is None  # no flops_per_token


def test_no_mfu_without_a_saved_peak_of_this_cpu_and_thread_count(cache):
    assert cpu_peak_flops("fp32") is None and model_flops_utilization(Model(), 5000.0, CPU, FP32) is None
    save_peak(cpu="Some Other CPU 9000")
    assert model_flops_utilization(Model(), 5000.0, CPU, FP32) is None
    save_peak(threads=torch.get_num_threads() + 1)
    assert model_flops_utilization(Model(), 5000.0, CPU, FP32) is None
    save_peak(peak_flops={"fp32": "fast"})
    assert model_flops_utilization(Model(), 5000.0, CPU, FP32) is None
    peak_path().write_text("{not json")
    assert model_flops_utilization(Model(), 5000.0, CPU, FP32) is None
    save_peak()
    assert model_flops_utilization(Model(), 5000.0, torch.device("meta"), FP32) is None  # neither CPU nor CUDA
