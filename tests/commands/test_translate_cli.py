"""`attnlab translate`: a tiny translate run's translations from arguments and stdin, equal to the
run's own test translations; bad input (beam 0, max-len 0, a missing checkpoint, nothing on stdin)
is one line, exit 2."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from attnlab.cli import main

pytest.importorskip("tokenizers")
pytest.importorskip("sacrebleu")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"{e} {a}.\t{f} {b}.\n" for e, f in [("I am", "je suis"), ("you are", "tu es"),
                                                                  ("he is", "il est"), ("we are", "nous sommes")]
                             for a, b in [("cold", "froid"), ("tired", "fatigué"), ("here", "ici"),
                                          ("late", "en retard"), ("sad", "triste")]), encoding="utf-8")
    out = root / "run"
    assert main(["train", "translate", "--preset", "tiny", "--data", str(pairs), "--out", str(out),
                 "--no-progress"]) == 0
    return out


def run_translations(run) -> dict[str, str]:
    with open(run / "translations.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return {r[0]: r[2] for r in rows}


def test_translates_arguments_as_the_run_translated_its_test_split(run, capsys):
    expected = run_translations(run)
    sources = list(expected)
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(run), *sources]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [expected[s] for s in sources]
    beam = json.loads((run / "metrics.json").read_text())["decode_beam"]
    assert f"{len(sources)} sentence(s) in" in out.err and f"beam {beam}, length penalty 0.6" in out.err


def test_reads_stdin_and_beam_one_is_greedy(run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("I am cold.\n\nhe is late.\n"))
    assert main(["translate", "--checkpoint", str(run), "--beam", "1"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2 and "greedy" in out.err
    assert main(["translate", "--checkpoint", str(run), "--beam", "1", "I am cold.", "he is late."]) == 0
    assert capsys.readouterr().out == out.out


def test_a_text_longer_than_the_context_is_cut_with_a_note(run, capsys):
    long = "I am cold. " * 20  # 16 pieces kept by the tiny preset's max_len
    assert main(["translate", "--checkpoint", str(run), "--beam", "1", long]) == 0
    out = capsys.readouterr()
    assert "note: sentence 1 has " in out.err and "the model reads the first 16 (its max_len)" in out.err
    assert len(out.out.splitlines()) == 1


@pytest.mark.parametrize("args, match", [
    (["--beam", "0", "I am cold."], r"^error: --beam must be >= 1 \(1 = greedy\), got 0$"),
    (["--max-len", "0", "I am cold."], r"^error: --max-len must be >= 1, got 0$"),
])
def test_bad_options_are_one_line_and_exit_2(run, capsys, args, match):
    assert main(["translate", "--checkpoint", str(run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.search(match, err[0]), err


def test_a_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["translate", "--checkpoint", str(tmp_path / "nowhere"), "I am cold."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: checkpoint path") and "nowhere does not exist" in err[0]


def test_empty_stdin_is_one_line_and_exit_2(run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["translate", "--checkpoint", str(run)]) == 2
    assert capsys.readouterr().err.strip() == ("error: nothing to translate; pass the sentences as arguments or one "
                                              "per line on stdin")
