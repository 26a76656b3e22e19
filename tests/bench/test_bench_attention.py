"""`attnlab bench attention` at a tiny size, and the peak-memory measurement it relies on."""

from __future__ import annotations

import argparse
import json
import math

import torch

from attnlab.bench import attention
from attnlab.measure import peak_memory_bytes, time_interleaved


def test_peak_memory_counts_what_is_alive_at_the_peak():
    n = 256 * 1024  # floats: 1 MiB each

    def fn():
        a = torch.ones(n)
        b = torch.ones(n)  # 2 MiB alive here
        del a, b
        c = torch.ones(n)  # only 1 MiB alive now
        return c.sum()

    peak = peak_memory_bytes(fn)
    assert 2 * 4 * n <= peak < 3 * 4 * n


def test_time_interleaved_runs_setup_and_counts():
    calls = []
    s = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                         repeats=3, warmup=1, setup=lambda: calls.append("s"))
    assert len(s["a"]) == len(s["b"]) == 3
    assert calls[:4] == ["s", "a", "s", "b"]


def test_bench_attention_tiny(tmp_path, capsys):
    p = argparse.ArgumentParser()
    attention.add_arguments(p)
    out = tmp_path / "bench.json"
    args = p.parse_args(["--batch", "2", "--dim", "16", "--heads", "2", "--lengths", "8", "16",
                         "--repeats", "2", "--warmup", "1", "--json", str(out)])
    assert attention.run(args) == 0
    table = capsys.readouterr().out
    assert "time ratio" in table and "mem ratio" in table
    res = json.loads(out.read_text())
    assert [r["T"] for r in res["rows"]] == [8, 16]
    for r in res["rows"]:
        assert r["max_abs_diff"] < 1e-5  # same weights, same output
        for key in ("ours_ms", "torch_ms", "time_ratio", "ours_peak_mib", "torch_peak_mib", "memory_ratio"):
            assert math.isfinite(r[key]) and r[key] > 0
