"""`attnlab train|eval translate` end to end on a generated pair file: metrics.json with sacreBLEU's
scores and signatures, translations beside their references, bit-exact resume, eval, bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from attnlab.cli import main

pytest.importorskip("sacrebleu")
pytest.importorskip("tokenizers")

SUBJECTS = [("I am", "je suis"), ("you are", "tu es"), ("he is", "il est"), ("we are", "nous sommes"),
            ("they are", "ils sont"), ("she is", "elle est")]
WORDS = [("cold", "froid"), ("tired", "fatigué"), ("happy", "heureux"), ("here", "ici"), ("late", "en retard"),
         ("sad", "triste"), ("ready", "prêt")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: a second thread only adds synchronisation (badly so on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """42 English sentences, most with two translations, in fra.txt's layout under DIR/fra-eng/."""
    root = tmp_path_factory.mktemp("tatoeba")
    lines = []
    for i, (en, fr) in enumerate(SUBJECTS):
        for j, (a, b) in enumerate(WORDS):
            lines.append(f"{en} {a}.\t{fr} {b}.\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}{j}")
            if (i + j) % 3:
                lines.append(f"{en} {a}.\t{fr.capitalize()} {b} !\tCC-BY 2.0 (France) Attribution: tatoeba.org")
    (root / "fra-eng").mkdir()
    (root / "fra-eng" / "fra.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "translate", "--preset", "tiny", "--data-dir", str(data), "--out", str(out), "--no-progress",
                 "--set", "train.keep_last=4", *extra])


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "transformer"
    assert train(data, out) == 0
    return out


def read_tsv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_metrics_hold_bleu_chrf_and_their_signatures(run, data):
    import sacrebleu

    from attnlab.data.pairs import read_pairs, split_pairs

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["test_pairs"] > 0
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert metrics["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    rows = read_tsv(run / "translations.tsv")
    assert rows[0] == ["source", "reference", "translation"]
    test = split_pairs(read_pairs(data / "fra-eng" / "fra.txt"), val_fraction=0.1, test_fraction=0.1, seed=0).test
    assert [(r[0], r[1]) for r in rows[1:]] == test  # every test pair beside its translation
    hyps, refs = [r[2] for r in rows[1:]], [r[1] for r in rows[1:]]
    assert metrics["test_bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
    assert metrics["test_chrf"] == round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2)
    sources = {r[0]: r[2] for r in rows[1:]}
    assert all(r[2] == sources[r[0]] for r in rows[1:])  # one translation per source sentence
    # each source once, against all its test translations (two for most, one for some)
    refs: dict[str, list[str]] = {}
    for r in rows[1:]:
        refs.setdefault(r[0], []).append(r[1])
    assert {len(v) for v in refs.values()} == {1, 2} and metrics["test_sources"] == len(refs)
    streams = [[v[k] if k < len(v) else None for v in refs.values()] for k in range(2)]
    multi = sacrebleu.corpus_bleu([sources[s] for s in refs], streams)
    assert metrics["test_bleu_multiref"] == round(multi.score, 2)
    assert metrics["multiref_bleu_signature"].startswith("nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|")


def test_resume_is_bit_exact(run, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run, again)
    assert main(["train", "translate", "--out", str(again), "--resume-from",
                 str(again / "checkpoints" / "step-00000006"), "--no-progress"]) == 0
    from safetensors.torch import load_file

    a = load_file(run / "checkpoints" / "step-00000012" / "model.safetensors")
    b = load_file(again / "checkpoints" / "step-00000012" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (run, again))
    assert {k: ma[k] for k in ("val_loss", "train_loss", "test_bleu", "test_chrf", "steps")} == \
           {k: mb[k] for k in ("val_loss", "train_loss", "test_bleu", "test_chrf", "steps")}
    assert read_tsv(run / "translations.tsv") == read_tsv(again / "translations.tsv")


def test_eval_reproduces_the_scores_and_translations(run, tmp_path, capsys):
    out = tmp_path / "translations.tsv"
    assert main(["eval", "translate", "--checkpoint", str(run), "--translations", str(out),
                 "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for key in ("val_loss", "val_accuracy", "test_bleu", "test_chrf", "bleu_signature", "test_pairs"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-6) if "loss" in key else again[key] == metrics[key]
    assert read_tsv(out) == read_tsv(run / "translations.tsv")
    assert "eval: the pairs the run was trained on" in capsys.readouterr().err


def test_the_rnn_and_separate_vocabularies_train(data, tmp_path):
    assert train(data, tmp_path / "rnn", "--model", "rnn", "--set", "train.max_steps=4") == 0
    assert json.loads((tmp_path / "rnn" / "metrics.json").read_text())["steps"] == 4
    assert train(data, tmp_path / "apart", "--set", "train.max_steps=2", "--set", "data.shared_vocab=false",
                 "--set", "model.shared_embeddings=false") == 0
    meta = json.loads((tmp_path / "apart" / "checkpoints" / "step-00000002" / "meta.json").read_text())
    assert meta["tokenizer"]["shared"] is False and meta["tokenizer"]["source"] != meta["tokenizer"]["target"]


@pytest.mark.parametrize("text, match", [
    ("Go.\tVa !\nonly one column\n", r"^error: .*pairs.tsv line 2 has one column, not source<TAB>target; "),
    ("", r"^error: .*pairs.tsv holds no sentence pairs; "),
])
def test_bad_pair_files_are_one_line_and_exit_2(tmp_path, capsys, text, match):
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "translate", "--preset", "tiny", "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
    assert not out.exists()


def test_shared_embeddings_need_a_shared_vocabulary(data, tmp_path, capsys):
    assert train(data, tmp_path / "x", "--set", "data.shared_vocab=false") == 2
    assert "model.shared_embeddings needs one vocabulary" in capsys.readouterr().err
