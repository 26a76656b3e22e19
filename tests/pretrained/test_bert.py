"""BERT / DistilBERT in attnlab's BertClassifier: logits and attention equal to ``transformers``
models with random weights built here (``save_pretrained``), export back, fine-tuning that resumes
bit-exactly, the CLI on a BERT directory, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from attnlab.cli import main  # noqa: E402
from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.pretrained import bert as pb  # noqa: E402
from attnlab.pretrained.source import resolve  # noqa: E402
from attnlab.tasks import load_reader, load_trained  # noqa: E402

WORDS = "the a movie film was great awful boring loved hated plot actor and it this good bad".split()
TOL = 2e-5


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter random (LayerNorms and biases too), so that each mapped tensor matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.3 if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "LayerNorm.weight" in name
                                                               or "layer_norm.weight" in name else 0.0))


def bert_dir(tmp: Path, *, cls=None, safe=True, seed=0, **kw) -> tuple[Path, torch.nn.Module]:
    cls = cls or transformers.BertForSequenceClassification
    config = transformers.BertConfig(**kw)
    torch.manual_seed(seed)
    ref = cls(config).eval()
    randomize(ref, seed)
    ref.save_pretrained(tmp)
    if not safe:  # transformers 5 writes safetensors only: the older pytorch_model.bin, by hand, with the
        # LayerNorm.gamma / beta names of the original (TensorFlow-converted) checkpoints
        (tmp / "model.safetensors").unlink()
        old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in ref.state_dict().items()}
        assert any(k.endswith("LayerNorm.gamma") for k in old)
        torch.save(old, tmp / "pytorch_model.bin")
    return tmp, ref


def batch(vocab: int, types: int, seed: int = 0, lengths=(13, 4, 9, 1)):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    T = int(lengths.max())
    ids = torch.randint(1, vocab, (len(lengths), T), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    ids = ids * mask  # padding = 0 ([PAD])
    tt = torch.randint(0, max(types, 1), (len(lengths), T), generator=g) * mask
    return ids, lengths, mask, tt


SHAPES = {
    # odd sizes, a non-default eps, three token types
    "odd-eps": dict(vocab_size=101, hidden_size=36, num_hidden_layers=3, num_attention_heads=3,
                    intermediate_size=50, max_position_embeddings=40, type_vocab_size=3, layer_norm_eps=1e-7,
                    num_labels=3),
    # one layer, heads of 4, the tanh GELU
    "tanh-gelu": dict(vocab_size=57, hidden_size=20, num_hidden_layers=1, num_attention_heads=5,
                      intermediate_size=33, max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu_new",
                      num_labels=2),
    # BERT's own eps and GELU, a single token type, four classes
    "one-type": dict(vocab_size=77, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=20, type_vocab_size=1, num_labels=4),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("with_types", [True, False])
def test_logits_and_attention_equal_transformers(tmp_path, shape, with_types):
    kw = SHAPES[shape]
    d, ref = bert_dir(tmp_path, attn_implementation="eager", **kw)
    model = resolve_and_build(d)
    ids, lengths, mask, tt = batch(kw["vocab_size"], kw["type_vocab_size"])
    if not with_types:
        tt = None
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_attentions=True)
        ours = model(ids, lengths, tt)
        att = model.attend(ids, lengths, tt)
    diff = (ours - out.logits).abs().max().item()
    assert out.logits.abs().max() > 0.1  # random weights give logits far from 0: a wrong tensor shows
    assert diff < TOL, f"{shape}: max abs logit difference {diff:.3g} (tolerance {TOL})"
    adiff = (att.output - ours).abs().max().item()  # the explicit weights path against the fused kernel
    assert adiff < TOL, f"{shape}: attend's logits differ from forward's by {adiff:.3g}"
    for layer, (a, b) in enumerate(zip(att.attentions, out.attentions, strict=True)):
        for row, n in enumerate(lengths.tolist()):  # the real queries; HF's padding rows attend anyway
            wdiff = (a[row, :, :n, :] - b[row, :, :n, :]).abs().max().item()
            assert wdiff < TOL, f"{shape}: layer {layer} row {row}: max abs attention difference {wdiff:.3g}"


def resolve_and_build(d: Path):
    return pb.build(resolve(d))


def test_pytorch_model_bin_and_masked_lm_encoder(tmp_path):
    """A BertForMaskedLM saved as pytorch_model.bin with gamma / beta LayerNorm names: its encoder's
    hidden states equal BertModel's; the missing pooler and classifier are new, and listed."""
    kw = SHAPES["odd-eps"]
    d, ref = bert_dir(tmp_path, cls=transformers.BertForMaskedLM, safe=False, **kw)
    assert (d / "pytorch_model.bin").is_file()
    found = pb.loaded(resolve(d))
    assert found.new == ["pooler.dense", "classifier"]
    ids, lengths, mask, tt = batch(kw["vocab_size"], 3, seed=1)
    with torch.no_grad():
        hidden = ref.bert(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
        ours = found.model.eval().encode(ids, lengths, tt)
    for row, n in enumerate(lengths.tolist()):
        diff = (ours[row, :n] - hidden[row, :n]).abs().max().item()
        assert diff < TOL, f"row {row}: max abs hidden-state difference {diff:.3g}"


def distil_dir(tmp: Path, **kw) -> tuple[Path, torch.nn.Module]:
    config = transformers.DistilBertConfig(vocab_size=83, dim=24, n_layers=2, n_heads=4, hidden_dim=40,
                                           max_position_embeddings=30, num_labels=2, **kw)
    torch.manual_seed(0)
    ref = transformers.DistilBertForSequenceClassification(config).eval()
    randomize(ref, 3)
    ref.save_pretrained(tmp)
    return tmp, ref


def test_distilbert_logits_equal(tmp_path):
    d, ref = distil_dir(tmp_path)
    model = resolve_and_build(d)
    ids, lengths, mask, _ = batch(83, 1, seed=2)
    with torch.no_grad():
        diff = (model(ids, lengths) - ref(input_ids=ids, attention_mask=mask).logits).abs().max().item()
    assert diff < TOL, f"DistilBERT: max abs logit difference {diff:.3g}"


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_export_round_trip(tmp_path, family):
    """attnlab -> HF directory -> transformers -> equal logits (and the tensors come back unchanged)."""
    if family == "bert":
        d, _ = bert_dir(tmp_path / "src", **SHAPES["odd-eps"])
        hf_cls, vocab, types = transformers.BertForSequenceClassification, 101, 3
    else:
        d, _ = distil_dir(tmp_path / "src")
        hf_cls, vocab, types = transformers.DistilBertForSequenceClassification, 83, 0
    task, model, meta = load_trained(d)
    assert task == "text"
    written = pb.export(model, meta, tmp_path / "out")
    assert {p.name for p in written} >= {"config.json", "model.safetensors"}
    back = hf_cls.from_pretrained(tmp_path / "out").eval()
    ids, lengths, mask, tt = batch(vocab, types, seed=4)
    kwargs = {"token_type_ids": tt} if types else {}
    with torch.no_grad():
        diff = (model(ids, lengths, tt if types else None)
                - back(input_ids=ids, attention_mask=mask, **kwargs).logits).abs().max().item()
    assert diff < TOL, f"{family} export: max abs logit difference {diff:.3g}"
    again = resolve_and_build(tmp_path / "out")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_export_of_a_non_bert_text_model_is_one_error():
    meta = {"config": {"model": {"name": "transformer"}}}
    with pytest.raises(AttnlabError, match="text 'transformer' model has no Hugging Face counterpart"):
        pb.export(torch.nn.Linear(1, 1), meta, Path("/nonexistent"))


# --------------------------------------------------------------------------- the CLI on a BERT directory
def wordpiece_files(d: Path, texts: list[str]) -> None:
    wp = tokenizers.BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=120, min_frequency=1, show_progress=False)
    wp.save_model(str(d))  # vocab.txt


def review(rng: random.Random, positive: bool) -> str:
    good, bad = ["great", "loved", "good"], ["awful", "hated", "bad", "boring"]
    words = [rng.choice(good if positive else bad) if rng.random() < 0.4 else rng.choice(WORDS)
             for _ in range(rng.randint(3, 14))]
    return " ".join(words)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random tiny BertForSequenceClassification with a WordPiece vocabulary trained here, and TSVs."""
    root = tmp_path_factory.mktemp("bert")
    rng = random.Random(0)
    rows = {split: [(f"{split}{i}", "pos" if i % 2 else "neg", review(rng, bool(i % 2))) for i in range(n)]
            for split, n in (("train", 24), ("dev", 8), ("test", 8))}
    for split, lines in rows.items():
        (root / f"{split}.tsv").write_text("".join(f"{i}\t{lab}\t{t}\n" for i, lab, t in lines))
    d = root / "model"
    d.mkdir()
    wordpiece_files(d, [t for lines in rows.values() for _, _, t in lines])
    vocab = len((d / "vocab.txt").read_text().splitlines())
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=24, max_position_embeddings=32, num_labels=2,
                                     id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    torch.manual_seed(0)
    ref = transformers.BertForSequenceClassification(config)
    randomize(ref, 5)
    ref.save_pretrained(d)
    return root


def test_predict_and_explore_read_a_bert_directory(tiny_bert, tmp_path, capsys):
    d = tiny_bert / "model"
    ref = transformers.BertForSequenceClassification.from_pretrained(d).eval()
    tok = transformers.BertTokenizerFast.from_pretrained(d)
    text = "the movie was great and i loved it"
    assert main(["predict", "--checkpoint", str(d), "--json", text]) == 0
    got = json.loads(capsys.readouterr().out.splitlines()[0])
    with torch.no_grad():
        want = torch.softmax(ref(**tok(text, return_tensors="pt")).logits, -1)[0]
    assert abs(float(want[1]) - 0.5) > 0.01  # random weights: a prediction that depends on the ids
    assert got["probabilities"]["pos"] == pytest.approx(float(want[1]), abs=1e-5)
    # a sentence pair typed as A [SEP] B: the token types transformers gives the pair
    task, model, meta = load_trained(d)
    reader = load_reader(task, model, meta)
    enc = reader.text("the plot was bad [SEP] the actor was good", 64)
    ref_enc = tok("the plot was bad", "the actor was good")
    assert enc.inputs[0][0].tolist() == ref_enc["input_ids"]
    assert enc.inputs[2][0].tolist() == ref_enc["token_type_ids"]
    assert enc.tokens[0] == "[CLS]" and enc.tokens.count("[SEP]") == 2
    out = tmp_path / "page.html"
    assert main(["explore", "--checkpoint", str(d), "the film was boring", "--out", str(out)]) == 0
    assert out.is_file() and "[CLS]" in out.read_text()


def fine_tune(tiny_bert: Path, out: Path, *extra: str) -> int:
    return main(["train", "text", "--model", "bert", "--train", str(tiny_bert / "train.tsv"), "--dev",
                 str(tiny_bert / "dev.tsv"), "--test", str(tiny_bert / "test.tsv"), "--out", str(out),
                 "--no-progress", "--set", "train.batch_size=4", "--set", "train.epochs=4",
                 "--set", "train.eval_every=4", "--set", "train.lr=1e-3", "--set", "train.warmup_steps=2",
                 "--set", "train.log_every=1", "--set", "model.max_len=24", *extra])


def train_losses(run: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in recs if "train_loss" in r}


def test_fine_tune_records_its_source_and_resumes_bit_exactly(tiny_bert, tmp_path, monkeypatch):
    import attnlab.tasks.text as text_task

    init = ["--init", str(tiny_bert / "model")]
    assert fine_tune(tiny_bert, tmp_path / "a", *init) == 0
    losses_a = train_losses(tmp_path / "a")
    steps = sorted(losses_a)
    assert steps == list(range(1, 25))  # 24 reviews / 4 a batch x 4 epochs
    first, last = (sum(losses_a[s] for s in part) / 6 for s_ in [0] for part in (steps[:6], steps[-6:]))
    assert last < first - 0.05, f"the mean loss of the last epoch {last:.4f}, of the first {first:.4f}: no learning"
    _, model_a, meta = load_trained(tmp_path / "a")
    src = meta["pretrained"]
    assert src["source"] == str(tiny_bert / "model") and src["checksum"].startswith("sha256:")
    assert meta["inputs"]["pretrained weights"]["checksum"] == src["checksum"]
    assert meta["config"]["model"]["dim"] == 16 and meta["config"]["model"]["max_len"] == 24

    real_loss, calls = text_task.loss_fn, []

    def interrupted(model, batch):
        if model.training:
            calls.append(1)
            if len(calls) == 7:
                raise KeyboardInterrupt("stop")
        return real_loss(model, batch)

    monkeypatch.setattr(text_task, "loss_fn", interrupted)
    assert fine_tune(tiny_bert, tmp_path / "b", *init) != 0  # interrupted at the 7th step: step 4 is kept
    assert (tmp_path / "b" / "checkpoints").is_dir()
    monkeypatch.setattr(text_task, "loss_fn", real_loss)
    assert fine_tune(tiny_bert, tmp_path / "b", "--resume") == 0  # no --init: all from the checkpoint
    assert train_losses(tmp_path / "b") == losses_a  # exact float equality
    _, model_b, _ = load_trained(tmp_path / "b")
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # eval of the fine-tuned run reads the test TSV with the run's WordPiece
    assert main(["eval", "text", "--checkpoint", str(tmp_path / "a"), "--out", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test_accuracy"] >= 0
    # exported, the fine-tuned run is a BertForSequenceClassification with its tokenizer: equal logits
    assert main(["export", str(tmp_path / "a"), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    enc = transformers.BertTokenizerFast.from_pretrained(tmp_path / "hf")(
        ["the plot was great", "boring and bad, i hated this film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        diff = (hf(**enc).logits - model_a(enc["input_ids"], enc["attention_mask"].sum(1))).abs().max().item()
    assert diff < TOL, f"exported fine-tuned run: max abs logit difference {diff:.3g}"
    assert hf.config.id2label == {0: "neg", 1: "pos"}


# --------------------------------------------------------------------------- bad input
def test_a_shape_mismatch_names_the_tensor_exit_2(tiny_bert, tmp_path, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    for f in (tiny_bert / "model").iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    config = json.loads((d / "config.json").read_text())
    config["intermediate_size"] = 25
    (d / "config.json").write_text(json.dumps(config))
    before = sorted(p.name for p in d.iterdir())
    assert main(["predict", "--checkpoint", str(d), "a movie"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "tensor 'encoder.layer.0.intermediate.dense.weight' has shape (24, 16)" in err
    assert sorted(p.name for p in d.iterdir()) == before


def test_fine_tuning_without_init_or_from_a_gpt2_is_one_error(tiny_bert, tmp_path, capsys):
    assert fine_tune(tiny_bert, tmp_path / "no-init") == 2
    assert "model bert starts from pretrained weights: pass --init DIR" in capsys.readouterr().err
    assert not (tmp_path / "no-init").exists()
    gpt = tmp_path / "gpt2"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=30,
                                                         n_positions=8)).save_pretrained(gpt)
    assert fine_tune(tiny_bert, tmp_path / "from-gpt", "--init", str(gpt)) == 2
    assert "is a GPT2LMHeadModel, not a BERT" in capsys.readouterr().err
    assert not (tmp_path / "from-gpt").exists()


def test_unsupported_settings_are_named():
    with pytest.raises(AttnlabError, match="position_embedding_type 'relative_key' is not supported"):
        pb.model_config({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 8, "vocab_size": 9, "position_embedding_type": "relative_key"})
    with pytest.raises(AttnlabError, match="activation 'relu' is not supported"):
        pb.model_config({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 8, "vocab_size": 9, "hidden_act": "relu"})


def test_a_directory_without_a_tokenizer_cannot_read_text_exit_2(tmp_path, capsys):
    d, _ = bert_dir(tmp_path / "model", **SHAPES["one-type"])
    assert main(["predict", "--checkpoint", str(d), "a movie"]) == 2
    assert "holds no tokenizer (vocab.txt or tokenizer.json)" in capsys.readouterr().err
    assert main(["explore", "--checkpoint", str(d), "a movie", "--out", str(tmp_path / "page.html")]) == 2
    assert "ships no tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "page.html").exists()


def test_a_token_classifier_head_is_not_taken_for_a_sequence_classifier(tmp_path):
    """BertForTokenClassification's 'classifier' scores each token: loaded as a text classifier it
    is not used (a new head stands in, and is named), while the encoder is."""
    d, ref = bert_dir(tmp_path, cls=transformers.BertForTokenClassification, **SHAPES["tanh-gelu"])
    found = pb.loaded(resolve(d))
    assert found.new == ["pooler.dense", "classifier"]
    ids, lengths, mask, tt = batch(57, 2, seed=5)
    with torch.no_grad():
        hidden = ref.bert(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
        diff = (found.model.eval().encode(ids, lengths, tt)[0, :13] - hidden[0, :13]).abs().max().item()
    assert diff < TOL, f"max abs hidden-state difference {diff:.3g}"
