"""Every numeric option of every benchmark, lab experiment and command that reads a trained
model refuses a value no size, count, index or rate can take: ``-1`` (and, for the options that
take fractions, ``nan``) ends as one ``error:`` line naming the option, exit code 2, no traceback,
before anything is loaded.

The options are read from each module's own parser, so an option added later is swept too. Only
``--seed`` (any integer seeds a generator) is left out. Before ``attnlab.options``, 41 of the 95
cases failed: tracebacks (``--heads -1``: an AssertionError), runs of a model with no layers
(``--layers -1``), a warm-up of -1 rounds, and errors about something else (``--vocab -1``: "must
be set (it comes from the tokenizer)"), and all 4 of the ``nan`` cases (``bench peak --min-ms nan``
ran; ``lab vanishing --radii nan`` drew a plot). Of the commands, ``explore --layer -1``,
``--head -1`` and ``--images -1`` and ``attention-map --images -1`` were refused only after the
model loaded, or, for a missing checkpoint, with an error about the checkpoint instead."""

from __future__ import annotations

import argparse

import pytest

from attnlab.bench import BENCHMARKS
from attnlab.cli import main
from attnlab.commands import COMMANDS
from attnlab.lab import EXPERIMENTS

ANY_VALUE = {"--seed"}
NO_RUN = ["--checkpoint", "no-such-run"]  # each option is refused before the checkpoint is looked for
REQUIRED = {("bench", "translate"): NO_RUN, ("bench", "nanogpt"): ["--nanogpt", "no-such-model.py"],
            ("command", "generate"): NO_RUN, ("command", "explore"): NO_RUN,
            ("command", "translate"): [*NO_RUN, "I am cold."], ("command", "attention-map"): NO_RUN}
REGISTRIES = {"bench": BENCHMARKS, "lab": EXPERIMENTS, "command": COMMANDS}
READ_A_MODEL = ["generate", "explore", "translate", "attention-map"]  # the commands with numeric options


def numeric_options(kind: str, name: str) -> list[tuple[str, type]]:
    """The options ``(--NAME, int or float)`` of a benchmark, experiment or command, from its own parser."""
    parser = argparse.ArgumentParser()
    REGISTRIES[kind].load(name).add_arguments(parser)
    return [(a.option_strings[-1], a.type) for a in parser._actions
            if a.type in (int, float) and a.option_strings[-1] not in ANY_VALUE]


NAMES = [("bench", name) for name in BENCHMARKS.names()] + \
    [("lab", name) for name in EXPERIMENTS.names() if name != "report"] + [("command", name) for name in READ_A_MODEL]
OPTIONS = [(kind, name, option, kind_of) for kind, name in NAMES for option, kind_of in numeric_options(kind, name)]
CASES = [(kind, name, option) for kind, name, option, _ in OPTIONS]
FLOATS = [(kind, name, option) for kind, name, option, kind_of in OPTIONS if kind_of is float]


def test_the_sweep_covers_the_options_that_crashed():
    swept = {(kind, name, option) for kind, name, option in CASES}
    for case in [("bench", "vit", "--heads"), ("bench", "gpt", "--dropout"), ("bench", "bert", "--vocab"),
                 ("bench", "attention", "--warmup"), ("lab", "vanishing", "--hidden"), ("lab", "lowrank", "--batch"),
                 ("lab", "generation", "--layers"), ("bench", "peak", "--min-ms"), ("command", "explore", "--layer"),
                 ("command", "attention-map", "--images"), ("command", "generate", "--temperature")]:
        assert case in swept, case
    assert len(CASES) > 90
    # a command that gains a numeric option joins READ_A_MODEL (and the sweep)
    assert {name for name in COMMANDS.names() if numeric_options("command", name)} == set(READ_A_MODEL)
    fractions = {("bench", "gpt", "--dropout"), ("bench", "peak", "--min-ms"), ("lab", "vanishing", "--radii")}
    assert fractions <= set(FLOATS)


def refused(kind: str, name: str, option: str, value: str, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the lab's default --out, runs/lab, lands here if anything is written
    code = main([*([] if kind == "command" else [kind]), name, *REQUIRED.get((kind, name), []), option, value])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and option in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind, name, option", CASES, ids=[" ".join(c) for c in CASES])
def test_minus_one_is_one_error_line(kind, name, option, tmp_path, monkeypatch, capsys):
    refused(kind, name, option, "-1", tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("kind, name, option", FLOATS, ids=[" ".join(c) for c in FLOATS])
def test_nan_is_one_error_line(kind, name, option, tmp_path, monkeypatch, capsys):
    # NaN passes a check written as ``value < 0`` (every comparison with it is false)
    refused(kind, name, option, "nan", tmp_path, monkeypatch, capsys)
