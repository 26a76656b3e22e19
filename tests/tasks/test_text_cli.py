"""`attnlab train text` end to end on generated fixtures, predict / explain / sweep, and bad input."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sys
import warnings

import pytest
import torch

from attnlab.cli import main
from attnlab.data.sentiment import encode_texts
from attnlab.tasks import load_trained

POS = "great wonderful superb loved amazing brilliant".split()
NEG = "awful boring terrible hated worst dull".split()
FILL = "the movie was a film plot actor and it i this".split()


def review(rng, positive):
    words = [rng.choice(POS if positive else NEG) if rng.random() < 0.3 else rng.choice(FILL)
             for _ in range(rng.randint(3, 30))]
    return " ".join(words) + ". Mr. Smith said<br /><br />it's \"fine\"..."


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_review_files):
    root = tmp_path_factory.mktemp("text")
    write_review_tsvs, write_word_vectors = make_review_files
    rng = random.Random(0)
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i in range(16):
                (d / f"{i}_{8 if label == 'pos' else 3}.txt").write_text(review(rng, label == "pos"))
    write_review_tsvs(root, {"train": 30, "dev": 8, "test": 8}, lambda positive: review(rng, positive))
    write_word_vectors(root / "vectors.txt", POS + NEG + FILL + [".", "mr.", "smith", "'s", "``", "''", "..."], rng)
    return root


def train(data, out, *extra, model="logreg"):
    return main(["train", "text", "--model", model, "--preset", "tiny", "--embeddings", str(data / "vectors.txt"),
                 "--cache-dir", str(data / "cache"), "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """One tiny run per model on the aclImdb fixture (a few optimizer steps each)."""
    out = tmp_path_factory.mktemp("runs")
    for model in ("logreg", "ffnn", "attention", "transformer", "rnn"):
        assert train(data, out / model, "--data-dir", str(data / "aclImdb"), model=model) == 0
    return out


@pytest.mark.parametrize("model", ["logreg", "ffnn", "attention", "transformer", "rnn"])
def test_each_model_trains_through_the_cli(runs, model):
    metrics = json.loads((runs / model / "metrics.json").read_text())
    for key in ("val_accuracy", "test_accuracy", "test_precision_pos", "test_recall_neg", "test_f1_pos",
                "test_confusion_pos_neg", "features_seconds", "train_seconds", "test_ece", "test_ece_calibrated",
                "calibration_temperature"):
        assert key in metrics, key
    assert 0 < metrics["calibration_temperature"] and (runs / model / "reliability.png").stat().st_size > 1000
    assert sum(metrics[f"test_confusion_{t}_{p}"] for t in ("neg", "pos") for p in ("neg", "pos")) == 32
    config = json.loads((runs / model / "config.json").read_text())
    assert config["model"]["name"] == model


def tsv_files(data):
    return ["--train", str(data / "train.tsv"), "--dev", str(data / "dev.tsv"), "--test", str(data / "test.tsv")]


def test_tsv_files_train_then_eval(data, tmp_path, capsys):
    assert train(data, tmp_path / "r", *tsv_files(data), model="ffnn") == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert sum(metrics[f"test_confusion_{t}_{p}"] for t in ("neg", "pos") for p in ("neg", "pos")) == 8
    # `attnlab eval text` on the best checkpoint scores the test file exactly as training did
    assert main(["eval", "text", "--checkpoint", str(tmp_path / "r"), *tsv_files(data),
                 "--cache-dir", str(data / "cache"), "--out", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    test_keys = sorted(k for k in metrics if k.startswith("test_") and k != "test_ece_calibrated")
    assert "test_accuracy" in test_keys and sorted(evaluated) == test_keys
    for key in test_keys:
        assert evaluated[key] == metrics[key], key
    assert "test_accuracy" in capsys.readouterr().out
    # without data flags, eval reads the files the run recorded, and says so
    assert main(["eval", "text", "--checkpoint", str(tmp_path / "r"), "--cache-dir", str(data / "cache"),
                 "--out", str(tmp_path / "ev2")]) == 0
    assert json.loads((tmp_path / "ev2" / "metrics.json").read_text()) == evaluated
    assert f"the reviews the run was trained on: {(data / 'train.tsv').resolve()}" in capsys.readouterr().err


def model_probabilities(checkpoint, texts):
    """The trained model's own softmax over ``texts``, (N, 2), through the public loaders."""
    _, model, meta = load_trained(checkpoint)
    enc, _ = encode_texts(texts, meta["vocab"], meta["config"]["model"]["max_len"])
    with torch.no_grad():
        return torch.softmax(model(enc["ids"], enc["lengths"]).double(), dim=-1), meta["labels"]


def test_predict_label_and_probability(runs, capsys):
    long_review = "great " * 100_000  # truncated to the model's max_len
    texts = ["a great film", "", long_review, "zzz qqq unknown words only", "awful boring dull plot"]
    assert main(["predict", "--checkpoint", str(runs / "transformer"), *texts]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    probs, labels = model_probabilities(runs / "transformer", texts)
    assert len(lines) == len(texts) and labels == ["neg", "pos"]
    shown = ["a great film", "", "great " * 9 + "gre...", "zzz qqq unknown words only", "awful boring dull plot"]
    for i, (line, p) in enumerate(zip(lines, probs)):
        index, label, prob, text = line.split("\t")  # ID, LABEL, PROBABILITY, the review's first 60 characters
        k = int(p.argmax())
        assert index == str(i + 1) and label == labels[k] and text == shown[i]
        assert float(prob) == pytest.approx(float(p[k]), abs=5e-5)  # printed with 4 decimals
    assert main(["predict", "--checkpoint", str(runs / "logreg"), "--json", "zzz qqq", "great wonderful"]) == 0
    outs = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    probs, labels = model_probabilities(runs / "logreg", ["zzz qqq", "great wonderful"])
    assert [out["id"] for out in outs] == [1, 2] and [out["text"] for out in outs] == ["zzz qqq", "great wonderful"]
    for out, p in zip(outs, probs):
        k = int(p.argmax())
        assert out["label"] == labels[k] and out["probability"] == pytest.approx(float(p[k]), abs=5e-7)
        for name, v in zip(labels, p):
            assert out["probabilities"][name] == pytest.approx(float(v), abs=5e-7)  # 6 decimals


@pytest.mark.parametrize("model", ["attention", "transformer"])
def test_explain_writes_png_and_html(runs, tmp_path, model, capsys):
    assert main(["explain", "--checkpoint", str(runs / model), "Not awful at all, I loved it.",
                 "--out", str(tmp_path / "ex")]) == 0
    png = (tmp_path / "ex" / "attention.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    label, probability = capsys.readouterr().out.splitlines()[0].split("\t")
    # The page shades each token by the attention it receives: recompute it from the model's attend
    _, trained, meta = load_trained(runs / model)
    enc, seen = encode_texts(["Not awful at all, I loved it."], meta["vocab"], meta["config"]["model"]["max_len"])
    with torch.no_grad():
        attended = trained.attend(enc["ids"], enc["lengths"])
    last = attended.attentions[-1][0].mean(0)  # (T, T): heads averaged
    received = last.mean(0)  # each token's column, averaged over every query
    p = torch.softmax(attended.output[0], -1)
    assert label == meta["labels"][int(p.argmax())] and float(probability) == pytest.approx(float(p.max()), abs=1e-4)
    page = (tmp_path / "ex" / "attention.html").read_text()
    span = r'<span title="([0-9.]+)" style="background: rgba\(255, 120, 0, ([0-9.]+)\);[^>]*>([^<]*)</span>'
    spans = re.findall(span, page)
    assert [t for _, _, t in spans] == seen[0]
    assert [float(v) for v, _, _ in spans] == pytest.approx(received.tolist(), abs=5e-5)  # 4 decimals
    assert [float(a) for _, a, _ in spans] == pytest.approx((received / received.max()).tolist(), abs=5e-4)


def stdin(monkeypatch, raw: bytes):
    """Make `raw` what the command reads from a (non-terminal) stdin."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))


def test_predict_reads_stdin_with_line_numbers(runs, capsys, monkeypatch):
    stdin(monkeypatch, "\ufeffa great\tfilm\n\n   \nawful boring dull plot\r\n".encode())  # BOM, tab, blank lines
    assert main(["predict", "--checkpoint", str(runs / "transformer")]) == 0
    lines = capsys.readouterr().out.splitlines()
    probs, labels = model_probabilities(runs / "transformer", ["a great\tfilm", "awful boring dull plot"])
    assert [line.split("\t")[0] for line in lines] == ["1", "4"]  # line numbers; blank lines are skipped
    assert [line.split("\t")[3] for line in lines] == ["a great film", "awful boring dull plot"]
    assert [line.split("\t")[1] for line in lines] == [labels[int(p.argmax())] for p in probs]


@pytest.mark.parametrize("raw", [b"", b"\n  \n"], ids=["empty", "blank"])
def test_predict_empty_stdin(runs, capsys, monkeypatch, raw):
    stdin(monkeypatch, raw)  # echo -n | attnlab predict --checkpoint RUN
    assert main(["predict", "--checkpoint", str(runs / "logreg")]) == 2
    assert capsys.readouterr() == ("", 'error: stdin holds no review (it is empty or blank); pipe one review per '
                                   'line, e.g. echo "great film" | attnlab predict --checkpoint RUN, or pass the '
                                   'text as an argument\n')


@pytest.mark.parametrize("raw,message", [
    (random.Random(0).randbytes(4096), "stdin holds NUL bytes, so it is binary data, not text; pass UTF-8 text"),
    ("a great film\nawful\n".encode("utf-16"),
     "stdin looks like UTF-16 text; convert it to UTF-8, e.g. with `iconv -f utf-16 -t utf-8`"),
    ("a great film\nawful\n".encode("utf-16-le"),
     "stdin looks like UTF-16 text; convert it to UTF-8, e.g. with `iconv -f utf-16le -t utf-8`"),
    ("a great film\nawful\n".encode("utf-32"),
     "stdin looks like UTF-32 text; convert it to UTF-8, e.g. with `iconv -f utf-32 -t utf-8`"),
    (b"a great film\nna\xefve\n", "stdin is not UTF-8 text (byte 0xef on line 2); convert it to UTF-8, e.g. "
                                   "with `iconv -f latin1 -t utf-8`"),
], ids=["random-bytes", "utf-16", "utf-16le", "utf-32", "latin1"])
def test_predict_refuses_undecodable_stdin(runs, capsys, monkeypatch, raw, message):
    stdin(monkeypatch, raw)
    assert main(["predict", "--checkpoint", str(runs / "logreg")]) == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")


def test_predict_refuses_an_argument_that_is_not_utf8(runs, capsys):
    text = b"na\xefve".decode("utf-8", "surrogateescape")  # how Python hands such bytes in argv
    assert main(["predict", "--checkpoint", str(runs / "logreg"), "fine", text]) == 2
    assert capsys.readouterr() == ("", "error: review argument 2 is not UTF-8 text; pass UTF-8 text\n")


def test_explain_emoji_draws_without_font_warnings(runs, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["explain", "--checkpoint", str(runs / "attention"), "I loved it \U0001F600\U0001F44D\u2764 !",
                     "--out", str(tmp_path / "ex")]) == 0
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == []
    out, err = capsys.readouterr()
    assert err == "" and out.endswith(f"wrote {tmp_path}/ex/attention.png and {tmp_path}/ex/attention.html\n")
    assert "\U0001F600" in (tmp_path / "ex" / "attention.html").read_text()


def test_explain_colorbar_is_labelled():
    import matplotlib.pyplot as plt

    from attnlab.commands.explain import _figure

    fig = _figure(torch.eye(3), ["a", "b", "c"], "title")
    try:
        heatmap, colorbar = fig.axes
        assert colorbar.get_ylabel() == "attention weight"
        assert heatmap.get_xlabel() == "attended token (key)"
    finally:
        plt.close(fig)


def test_explain_needs_an_attention_model(runs, tmp_path, capsys):
    assert main(["explain", "--checkpoint", str(runs / "rnn"), "x", "--out", str(tmp_path)]) == 2
    assert "no attention" in capsys.readouterr().err


def test_sweep_writes_csv_markdown_and_hparams(data, tmp_path, capsys):
    from attnlab.tasks import TASKS

    out = tmp_path / "sweep"
    reviews = ["--train", str(data / "train.tsv"), "--dev", str(data / "dev.tsv")]  # no test file: eval scores dev
    assert main(["sweep", "text", "--model", "ffnn", "--preset", "tiny", *reviews,
                 "--embeddings", str(data / "vectors.txt"), "--cache-dir", str(data / "cache"),
                 "--grid", "train.lr=1e-2,1e-3", "model.hidden_size=4", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 and {r["train.lr"] for r in rows} == {"1e-2", "1e-3"}
    assert all(r["status"] == "ok" for r in rows)
    # each row's val_accuracy is its run's: its best checkpoint scored again on the dev reviews
    text = TASKS.load("text")
    inputs = text.INPUTS(train=data / "train.tsv", dev=data / "dev.tsv", cache_dir=data / "cache")
    for r in rows:
        assert float(r["val_accuracy"]) == text.evaluate(out / r["run"], inputs, device="cpu")["val_accuracy"]
    assert "| run |" in (out / "results.md").read_text()
    assert any((out / "tb").rglob("events.out.tfevents.*"))


def test_sweep_rejects_a_bad_grid(data, tmp_path, capsys):
    assert main(["sweep", "text", "--grid", "model.nope=1,2", "--out", str(tmp_path)]) == 2
    assert "unknown config key 'model.nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input


def bad_run(data, tmp_path, capsys, *args, model="logreg"):
    rc = train(data, tmp_path / "bad", *args, model=model)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_tsv_missing_column(data, tmp_path, capsys):
    f = tmp_path / "t.tsv"
    f.write_text("1\tpos\tgood\n2\tneg\n")
    rc, err = bad_run(data, tmp_path, capsys, "--train", str(f))
    assert rc == 2 and "t.tsv line 2" in err and "expected 3" in err


def test_tsv_unknown_label(data, tmp_path, capsys):
    f = tmp_path / "t.tsv"
    f.write_text("1\tpos\tgood\n2\tpositive\tfine\n")
    rc, err = bad_run(data, tmp_path, capsys, "--train", str(f))
    assert rc == 2 and "unknown label 'positive'" in err


def test_non_utf8_is_a_warning_not_a_crash(data, tmp_path, capsys):
    f = tmp_path / "t.tsv"
    f.write_bytes(open(data / "train.tsv", "rb").read() + b"x\tneg\tbad \xff\xfe bytes\n")
    rc, err = bad_run(data, tmp_path, capsys, "--train", str(f))
    assert rc == 0 and "not UTF-8" in err


def test_wrong_data_dir(data, tmp_path, capsys):
    wrong = tmp_path / "wrong"
    (wrong / "train").mkdir(parents=True)
    (wrong / "train.tsv").write_text("1\tpos\tgood\n")
    rc, err = bad_run(data, tmp_path, capsys, "--data-dir", str(wrong))
    assert rc == 2 and "expected an extracted aclImdb/" in err and "train.tsv" in err


def test_missing_embeddings(data, tmp_path, capsys):
    rc = main(["train", "text", "--model", "attention", "--preset", "tiny", "--data-dir",
               str(data / "aclImdb"), "--out", str(tmp_path / "x")])
    assert rc == 2 and "--embeddings" in capsys.readouterr().err


def test_unknown_pooling_is_rejected(data, tmp_path, capsys):
    rc, err = bad_run(data, tmp_path, capsys, *tsv_files(data), "--set", "model.pooling=avg", model="transformer")
    assert rc == 2 and "config key 'model.pooling' expects one of 'mean', 'max', 'meanmax', 'last'" in err
    assert not (tmp_path / "bad").exists()


def test_pooling_of_another_model_is_a_clear_error(data, tmp_path, capsys):
    rc, err = bad_run(data, tmp_path, capsys, *tsv_files(data), "--set", "model.pooling=last", model="transformer")
    assert rc == 2
    assert err == ("error: model.pooling=last does not apply to the transformer model; use one of mean, max, "
                   "meanmax (or none for mean)\n")
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_pooling_of_another_model_is_rejected_with_the_config(data, tmp_path, capsys):
    # like every other rejected config (tests/test_cli.py): an error before any data is read, no run directory
    rc, err = bad_run(data, tmp_path, capsys, "--set", "model.pooling=last", model="transformer")  # no data given
    assert rc == 2 and "model.pooling=last does not apply" in err
    assert not (tmp_path / "bad").exists()


def test_print_config_shows_the_preset_that_model_picks(capsys):
    assert main(["train", "text", "--model", "rnn", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "model.name = 'rnn'" in out and "model.max_len = 320" in out  # the rnn preset's, not logreg's 1000
    assert main(["train", "text", "--model", "rnn", "--preset", "logreg", "--print-config"]) == 0
    assert "model.max_len = 1000" in capsys.readouterr().out  # an explicit --preset wins


def test_a_vocabulary_of_special_tokens_only_is_refused(data, tmp_path, capsys):
    rc = main(["train", "text", "--model", "transformer", "--preset", "tiny", *tsv_files(data), "--set",
               "model.vocab_size=1", "--out", str(tmp_path / "bad"), "--no-progress"])  # a vocabulary of its own
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: the vocabulary would hold 1 word besides the special tokens")
    assert "raise model.vocab_size (now 1)" in err and not (tmp_path / "bad").exists()
