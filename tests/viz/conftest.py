"""Tiny trained checkpoints for the explorer's tests, built through the CLI once per session."""

from __future__ import annotations

import random

import pytest

from attnlab.cli import main

POS = "great wonderful superb loved amazing brilliant".split()
NEG = "awful boring terrible hated worst dull".split()
FILL = "the movie was a film plot actor and it i this not".split()


def train(*args: str) -> None:
    assert main(["train", *args, "--no-progress"]) == 0


@pytest.fixture(scope="session")
def gpt_run(tmp_path_factory):
    """DialogueGPT, 2 layers of 2 heads, context 32, on the bundled Tiny Shakespeare (a few steps)."""
    run = tmp_path_factory.mktemp("explore") / "gpt"
    train("gpt", "--preset", "tiny", "--set", "model.num_layers=2", "--set", "train.max_steps=3", "--out", str(run))
    return run


@pytest.fixture(scope="session")
def lstm_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("explore") / "lstm"
    train("lstm-lm", "--preset", "tiny", "--set", "train.max_steps=1", "--out", str(run))
    return run


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("explore") / "toy"
    train("toy", "--preset", "tiny", "--set", "model.num_layers=2", "--set", "train.epochs=1", "--out", str(run))
    return run


@pytest.fixture(scope="session")
def text_data(tmp_path_factory, make_review_files):
    """The course's TSV format and 6-d word vectors, generated."""
    root = tmp_path_factory.mktemp("text")
    write_review_tsvs, write_word_vectors = make_review_files
    rng = random.Random(0)

    def review(positive: bool) -> str:
        return " ".join(rng.choice(POS if positive else NEG) if rng.random() < 0.3 else rng.choice(FILL)
                        for _ in range(rng.randint(3, 20))) + "."

    write_review_tsvs(root, {"train": 40, "dev": 8, "test": 8}, review)
    write_word_vectors(root / "vectors.txt", POS + NEG + FILL + ["."], rng)
    return root


@pytest.fixture(scope="session")
def text_runs(text_data, tmp_path_factory):
    """One tiny run per text model the explorer meets: two with attention, one without."""
    out = tmp_path_factory.mktemp("text-runs")
    files = [f"--{n}={text_data / f'{n}.tsv'}" for n in ("train", "dev", "test")]
    for model, extra in (("transformer", ["--set", "model.num_layers=2"]), ("attention", []), ("logreg", [])):
        train("text", "--model", model, "--preset", "tiny", "--embeddings", str(text_data / "vectors.txt"),
              "--cache-dir", str(text_data / "cache"), "--out", str(out / model), *files, *extra)
    return out


@pytest.fixture(scope="session")
def vit_run(tmp_path_factory, make_cifar):
    """A 2-layer ViT (4x4 patches of 8 pixels) trained two steps on a fake CIFAR-10: (run, data dir)."""
    root = tmp_path_factory.mktemp("vit")
    folder = make_cifar(root / "data")
    run = root / "run"
    train("vit", "--preset", "tiny", "--set", "model.num_layers=2", "--data-dir", str(folder.parent),
          "--out", str(run), "--set", "train.max_steps=2")
    return run, folder.parent
