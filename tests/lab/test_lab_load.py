"""The lab records the load average before and after and the thread count with every
experiment; an experiment whose numbers are timings warns on the terminal, in its JSON and on
its figure when the load exceeded the thread count."""

from __future__ import annotations

import argparse
import importlib
import json
import os

import pytest
import torch

from attnlab.lab import _common


def _run(name: str, out, monkeypatch, load: float) -> tuple[dict, list[str]]:
    """Run experiment ``name`` at its tiny size with the load average pinned at ``load``; its JSON
    and the texts drawn on its figure outside the plots."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 1.0, 1.0))
    figure_texts: list[str] = []
    close = _common.plt.close
    monkeypatch.setattr(_common.plt, "close",
                        lambda fig=None: figure_texts.extend(t.get_text() for t in fig.texts) or close(fig))
    mod = importlib.import_module(f"attnlab.lab.{name}")
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    assert mod.run(p.parse_args([*mod.TINY_ARGS, "--out", str(out)])) == 0
    return json.loads((out / f"{name}.json").read_text()), figure_texts


def test_a_timed_experiment_on_a_busy_machine_says_so_everywhere(tmp_path, monkeypatch, capsys):
    doc, texts = _run("generation", tmp_path, monkeypatch, load=9.0)
    threads = torch.get_num_threads()
    assert doc["load"] == {"load_before": 9.0, "load_after": 9.0, "threads": threads, "busy": True}
    assert doc["load_warning"] and "load average (9.00) exceeded" in doc["load_warning"]
    assert any(t.startswith("BUSY MACHINE: load average 9.00 before, 9.00 after") for t in texts)
    captured = capsys.readouterr()
    assert "load average (9.00) exceeded" in captured.err and "load average 9.00 before" in captured.out


@pytest.mark.parametrize("name,load", [("generation", 0.25), ("scaling", 9.0)])
def test_no_note_on_a_quiet_machine_nor_on_numbers_that_are_not_timings(tmp_path, monkeypatch, capsys, name, load):
    doc, texts = _run(name, tmp_path, monkeypatch, load=load)
    assert doc["load"]["load_before"] == load and doc["load"]["threads"] == torch.get_num_threads()
    assert doc["load_warning"] is None and not any("BUSY" in t for t in texts)
    assert "exceeded" not in capsys.readouterr().err
