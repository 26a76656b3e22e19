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


@pytest.fixture(scope="session")
def translate_runs(task_inputs, tmp_path_factory):
    """A tiny encoder-decoder Transformer (2 layers each side, 2 heads) and a tiny GRU with attention,
    trained a few steps on the generated pair file: {"transformer": run, "rnn": run}."""
    out = tmp_path_factory.mktemp("translate-runs")
    pairs = str(task_inputs["translate"]["data"])
    train("translate", "--preset", "tiny", "--data", pairs, "--out", str(out / "transformer"),
          "--set", "model.encoder_layers=2", "--set", "model.decoder_layers=2", "--set", "decode.max_test=2")
    train("translate", "--preset", "tiny", "--set", "model.name=rnn", "--data", pairs, "--out", str(out / "rnn"),
          "--set", "decode.max_test=2")
    return {"transformer": out / "transformer", "rnn": out / "rnn"}


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A random tiny BertForSequenceClassification (2 layers, 2 heads) saved with a WordPiece vocab.txt trained here."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    import torch

    d = tmp_path_factory.mktemp("bert")
    rng = random.Random(0)
    words = POS + NEG + FILL + "actors were thin plot".split()
    wp = tokenizers.BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator([" ".join(rng.choice(words) for _ in range(10)) for _ in range(60)], vocab_size=150,
                           min_frequency=1, show_progress=False)
    wp.save_model(str(d))  # vocab.txt
    vocab = len((d / "vocab.txt").read_text().splitlines())
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=24, max_position_embeddings=40, num_labels=2,
                                     id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # far from the near-zero initialisation: attention that depends on the tokens and types
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    """A random tiny GPT2LMHeadModel with a byte-level BPE (vocab.json + merges.txt) trained on Tiny Shakespeare."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from importlib import resources

    import torch

    d = tmp_path_factory.mktemp("gpt2")
    text = resources.files("attnlab.data").joinpath("tinyshakespeare.txt").read_text(encoding="utf-8")[:50_000]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=400, min_frequency=2,
                           special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(d))
    config = transformers.GPT2Config(vocab_size=400, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(d)
    return d
