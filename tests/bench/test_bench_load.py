"""Numbers that survive a re-run: every benchmark records the load average before and after and
the thread count, warns when the load exceeded the threads, and says plainly when it missed its bar."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from attnlab.bench import attention, compare, generate
from attnlab.bench._common import bar_verdict
from attnlab.cli import main
from attnlab.measure import LoadWatch, load_average


def busy(monkeypatch, load: float = 5.0) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 1.0, 1.0))


@pytest.fixture(autouse=True)
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_load_watch_flags_a_load_above_the_thread_count(monkeypatch):
    torch.set_num_threads(2)
    busy(monkeypatch, 1.5)
    quiet = LoadWatch.start().stop()
    assert quiet.record() == {"load_before": 1.5, "load_after": 1.5, "threads": 2, "busy": False}
    assert quiet.summary() == "load average 1.50 before, 1.50 after; 2 threads" and quiet.warning() is None
    watch = LoadWatch.start()
    busy(monkeypatch, 3.25)  # the load rose during the measurement
    watch.stop()
    assert watch.busy and watch.record() == {"load_before": 1.5, "load_after": 3.25, "threads": 2, "busy": True}
    assert watch.warning() is not None and "load average (3.25) exceeded the 2 threads" in watch.warning()


def test_no_load_average_is_no_warning(monkeypatch):
    def missing():
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", missing)
    watch = LoadWatch.start().stop()
    assert load_average() is None and not watch.busy and watch.warning() is None
    assert watch.summary().startswith("load average unknown before, unknown after")


def test_bar_verdict_says_a_miss_plainly():
    assert bar_verdict("speed-up", 5.31, 5.0) == "speed-up: 5.31x (bar: >= 5x, met)"
    assert bar_verdict("speed-up", 3.84, 5.0) == "speed-up: 3.84x. MISSED: 3.84x is below the bar of >= 5x"
    assert bar_verdict("ratio", 0.936, 1.0, unit="", digits=3) == "ratio: 0.936. MISSED: 0.936 is below the bar of >= 1"
    assert bar_verdict("time", 1.2, 1.1, at_least=False) == "time: 1.20x. MISSED: 1.20x is above the bar of <= 1.1x"


GENERATE = ["bench", "generate", "--context", "16", "--num-tokens", "4", "--dim", "16", "--layers", "1",
            "--heads", "2", "--vocab", "50", "--repeats", "1", "--threads", "1"]


def test_bench_generate_warns_on_a_busy_machine_and_says_when_it_missed_its_bar(monkeypatch, capsys):
    busy(monkeypatch)
    monkeypatch.setattr(generate, "SPEEDUP_BAR", 1e9)  # out of reach
    assert main(GENERATE) == 0  # a miss is reported, not an error
    captured = capsys.readouterr()
    assert "MISSED: " in captured.out and "is below the bar of >= 1e+09x" in captured.out
    assert "load average 5.00 before, 5.00 after; 1 thread" in captured.out
    assert "warning: the load average (5.00) exceeded the 1 thread this" in captured.err


def test_bench_generate_on_a_quiet_machine_has_no_warning(monkeypatch, capsys):
    busy(monkeypatch, 0.5)
    monkeypatch.setattr(generate, "SPEEDUP_BAR", 0.0)  # always met
    assert main(GENERATE) == 0
    captured = capsys.readouterr()
    assert "(bar: >= 0x, met)" in captured.out and "MISSED" not in captured.out
    assert "load average 0.50 before" in captured.out and "warning" not in captured.err


def test_bench_attention_records_the_load_and_names_a_missed_bar(monkeypatch, tmp_path, capsys):
    busy(monkeypatch)
    monkeypatch.setattr(attention, "TIME_BAR", 0.0)  # every length misses
    p = argparse.ArgumentParser()
    attention.add_arguments(p)
    argv = ["--batch", "1", "--dim", "8", "--heads", "2", "--lengths", "4", "8", "--repeats", "1", "--warmup", "0"]
    out = tmp_path / "bench.json"
    assert attention.run(p.parse_args([*argv, "--json", str(out)])) == 0  # no --check: exit 0
    captured = capsys.readouterr()
    assert "MISSED: at T = 4, 8 a ratio is above the bar of time ratio <= 0.00" in captured.out
    assert "load average 5.00 before, 5.00 after" in captured.out and "exceeded" in captured.err
    res = json.loads(out.read_text())
    assert res["load"] == {"load_before": 5.0, "load_after": 5.0, "threads": torch.get_num_threads(), "busy": True}
    assert attention.run(p.parse_args([*argv, "--check"])) == 1  # the existing convention


def test_bench_gpt_says_when_ours_is_slower_than_the_bar(monkeypatch, capsys):
    pytest.importorskip("transformers", reason="`attnlab bench gpt` compares with Hugging Face transformers")
    busy(monkeypatch)
    monkeypatch.setattr(compare, "RATIO_BAR", 1e9)
    assert main(["bench", "gpt", "--layers", "1", "--dim", "16", "--heads", "2", "--context", "8",
                 "--vocab", "50", "--batch", "2", "--repeats", "1", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "MISSED: " in captured.out and "is below the bar of >= 1e+09" in captured.out
    assert "load average 5.00 before, 5.00 after; 1 thread" in captured.out and "exceeded" in captured.err
