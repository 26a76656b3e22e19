"""Sentiment classification of IMDB reviews (``attnlab train text --model NAME``).

Data: ``--data-dir`` (an extracted ``aclImdb/``, its parent, or ``aclImdb_v1.tar.gz``) or TSV
files (``--train F --dev F [--test F]``, ``id<TAB>label<TAB>text``). Reviews are cleaned
(lower case, ``<br />`` removed) and tokenized with ``nltk.word_tokenize`` on every core, the
tokens cached (:mod:`attnlab.data.features`), then indexed by the vocabulary of the word
vectors (``--embeddings``) or, for the Transformer and RNN without vectors, by the most
frequent training words. Each review keeps its first ``model.max_len`` tokens.

Models (:mod:`attnlab.models.text`): ``logreg``, ``ffnn``, ``attention`` (need ``--embeddings``),
``transformer``, ``rnn``, and ``bert`` (:mod:`attnlab.models.bert`), which starts from pretrained
BERT or DistilBERT weights (``--init DIR|hf:NAME``, :mod:`attnlab.pretrained.bert`) and reads the
reviews with their WordPiece tokenizer (:mod:`attnlab.data.wordpiece`; the raw text, ``[CLS]``
first, cut to ``model.max_len`` pieces); the run records the weights' source and checksum in
``meta["pretrained"]`` and keeps the tokenizer in its meta, so ``--resume`` needs no ``--init``.
A BERT directory or ``hf:NAME`` also works wherever a text checkpoint is taken
(:func:`load_pretrained`). ``--model NAME`` picks the model and, unless ``--preset`` is given,
the preset of the same name. Training goes through :func:`attnlab.engine.fit` with early
stopping (``train.patience``); the best checkpoint is then evaluated on the test set:
accuracy, per-class precision / recall / F1 and the confusion matrix (``test_confusion_T_P``:
reviews of true class T predicted as P).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from attnlab.config import Fraction, Seed, config_from_dict, config_to_dict
from attnlab.engine.config import TrainConfig
from attnlab.errors import AttnlabError
from attnlab.models.configs import MODELS as MODEL_NAMES
from attnlab.models.configs import NEEDS_VECTORS, PRETRAINED, TextModelConfig
from attnlab.tasks import resumed_meta

if TYPE_CHECKING:  # the work imports torch and the review pipeline when it starts (a fast --help)
    from torch import Tensor, nn

    from attnlab.data.sentiment import EncodedReviews
    from attnlab.data.wordpiece import WordPiece
    from attnlab.losses import Stats
    from attnlab.pretrained.source import Source

EXAMPLE = """\
attnlab data fetch imdb --dest data && attnlab data fetch glove --vocab-size 50000 --dest data
attnlab train text --model logreg --data-dir data/aclImdb --embeddings data/glove.6B.50d.top50000.txt
attnlab train text --model transformer --data-dir data/aclImdb_v1.tar.gz --out runs/text-transformer
attnlab train text --model rnn --train train.tsv --dev dev.tsv --test test.tsv --set model.cell=lstm
attnlab train text --model bert --init hf:bert-base-uncased --data-dir data/aclImdb --out runs/text-bert"""

@dataclass
class TextDataConfig:
    val_fraction: Fraction = 0.1  # carved from train (with split_seed) when there is no --dev
    split_seed: Seed = 0
    bucket: bool = True  # batch reviews of similar length together (less padding, same results)


@dataclass
class TextConfig:
    model: TextModelConfig = field(default_factory=TextModelConfig)
    data: TextDataConfig = field(default_factory=TextDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=10, batch_size=64, lr=1e-3, warmup_steps=50, weight_decay=0.01, log_every=50,
        patience=3, monitor="val_accuracy", precision="fp32"))

    PRESETS: ClassVar[dict[str, dict]] = {
        # The measured recipes (README "Sentiment"): one per model, picked by --model; defined by
        # epochs (and early stopping), so the same command trains the same model on any machine.
        "logreg": {"model.name": "logreg", "model.max_len": 1000, "train.epochs": 80,
                   "train.batch_size": 256, "train.lr": 2e-2, "train.weight_decay": 0.0,
                   "train.patience": 10, "train.monitor": "val_loss", "train.warmup_steps": 10},
        "ffnn": {"model.name": "ffnn", "model.max_len": 1000, "train.epochs": 80,
                 "train.batch_size": 256, "train.lr": 1e-2, "train.weight_decay": 0.0,
                 "train.patience": 10, "train.monitor": "val_loss", "train.warmup_steps": 10},
        "attention": {"model.name": "attention", "model.max_len": 256, "model.query_key_size": 32,
                      "train.epochs": 4, "train.batch_size": 64, "train.lr": 3e-3,
                      "train.patience": 2, "train.warmup_steps": 20},
        "transformer": {"model.name": "transformer", "model.max_len": 512, "model.dim": 64,
                        "model.num_heads": 2, "model.mlp_dim": 128, "model.num_layers": 1,
                        "model.dropout": 0.2, "model.pooling": "meanmax", "model.vocab_size": 50000,
                        "train.epochs": 5, "train.batch_size": 64, "train.lr": 1.5e-3,
                        "train.weight_decay": 0.05, "train.patience": 4, "train.warmup_steps": 100,
                        "train.eval_every": 176},
        "rnn": {"model.name": "rnn", "model.max_len": 320, "model.dim": 64, "model.hidden_size": 64,
                "model.cell": "lstm", "model.pooling": "max", "model.dropout": 0.2,
                "train.epochs": 6, "train.batch_size": 128, "train.lr": 4e-3, "train.patience": 4,
                "train.warmup_steps": 30, "train.eval_every": 88},
        # BERT's fine-tuning recipe (Devlin et al.: lr 2e-5, batch 32, 2 to 4 epochs); the shape comes from --init.
        "bert": {"model.name": "bert", "model.max_len": 256, "model.dropout": 0.1, "train.epochs": 2,
                 "train.batch_size": 32, "train.lr": 2e-5, "train.weight_decay": 0.01, "train.warmup_steps": 100,
                 "train.patience": None, "train.eval_every": 200, "train.log_every": 20},
        # Seconds; for tests and smoke runs.
        "tiny": {"model.max_len": 32, "model.dim": 16, "model.mlp_dim": 32, "model.hidden_size": 8,
                 "model.query_key_size": 8, "model.vocab_size": 2000, "model.min_count": 1,
                 "train.epochs": 1, "train.batch_size": 8, "train.warmup_steps": 2,
                 "train.log_every": 5, "train.patience": None},
    }
    DEFAULT_PRESET: ClassVar[str] = "logreg"


def _path(help_text: str) -> Any:
    return field(default=None, metadata={"help": help_text})


@dataclass
class TextInputs:
    data_dir: Path | None = _path("an extracted aclImdb/ folder, its parent, or aclImdb_v1.tar.gz "
                                  "(`attnlab data fetch imdb` downloads it)")
    train: Path | None = _path("TSV training file: id<TAB>label<TAB>text, labels pos/neg")
    dev: Path | None = _path("TSV validation file (default: carved from the training data)")
    test: Path | None = _path("TSV test file")
    embeddings: Path | None = _path("GloVe-format word vectors (word v1 ... vD per line, .gz ok); required by "
                                    "logreg, ffnn and attention, optional initialisation otherwise")
    cache_dir: Path | None = _path("where tokenized reviews are cached (default ~/.cache/attnlab)")
    workers: int | None = field(default=None, metadata={"help": "processes for tokenization (default: one per core)"})
    init: str | None = field(default=None, metadata={
        "help": "--model bert: the pretrained weights to start from, a BERT / DistilBERT directory (config.json, "
                "model.safetensors, vocab.txt or tokenizer.json) or hf:NAME (e.g. hf:bert-base-uncased)"})


CONFIG, INPUTS = TextConfig, TextInputs
MODELS = MODEL_NAMES  # `attnlab train text --model NAME` picks the model and the preset of that name


def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Stats]:
    from attnlab.losses import classification_loss

    if "features" in batch:  # averaged word vectors, computed once (logreg, ffnn)
        logits = model(features=batch["features"])
    elif "token_type_ids" in batch:  # a BERT reading sentence pairs
        logits = model(batch["ids"], batch["lengths"], batch["token_type_ids"])
    else:
        logits = model(batch["ids"], batch["lengths"])
    return classification_loss(logits, batch["label"])


def _prepare(cfg: TextConfig, inputs: TextInputs, vocab: list[str] | None = None) -> EncodedReviews:
    from attnlab.data.sentiment import prepare_reviews

    m = cfg.model
    if m.name in NEEDS_VECTORS and inputs.embeddings is None:
        raise AttnlabError(f"model '{m.name}' needs pretrained word vectors: pass --embeddings PATH "
                           "(GloVe text format; `attnlab data fetch glove --vocab-size 50000 --dest data` "
                           "writes data/glove.6B.50d.top50000.txt), or use --model transformer or rnn")
    return prepare_reviews(data_dir=inputs.data_dir, train=inputs.train, dev=inputs.dev, test=inputs.test,
                           embeddings=inputs.embeddings, max_len=m.max_len, vocab_size=m.vocab_size,
                           min_count=m.min_count, val_fraction=cfg.data.val_fraction,
                           split_seed=cfg.data.split_seed, cache_dir=inputs.cache_dir, workers=inputs.workers,
                           vocab=vocab)


def calibration(model: nn.Module, val: dict[str, Tensor], test: dict[str, Tensor], run_dir: Path) -> dict[str, float]:
    """How far the test probabilities are from the accuracies they claim: expected calibration
    error before and after temperature scaling fitted on the validation reviews, and a reliability
    diagram (``run_dir/reliability.png``, drawn by the main process)."""
    import torch

    from attnlab.engine.distributed import is_main_process
    from attnlab.metrics import expected_calibration_error, fit_temperature, reliability_diagram
    from attnlab.models.text import predict_logits

    temperature = fit_temperature(predict_logits(model, val), val["label"])
    logits = predict_logits(model, test)
    raw, table = expected_calibration_error(torch.softmax(logits, -1), test["label"])
    scaled, scaled_table = expected_calibration_error(torch.softmax(logits / temperature, -1), test["label"])
    if is_main_process():
        reliability_diagram({"model": table, f"temperature {temperature:.2f}": scaled_table},
                            run_dir / "reliability.png", title="reliability on the test reviews")
    return {"test_ece": raw, "test_ece_calibrated": scaled, "calibration_temperature": temperature}


def _review_files(inputs: TextInputs) -> dict[str, str]:
    """The review files a run reads, as absolute paths (recorded so that ``eval`` can find them)."""
    given = {"data_dir": inputs.data_dir, "train": inputs.train, "dev": inputs.dev, "test": inputs.test}
    return {name: str(Path(p).resolve()) for name, p in given.items() if p}


def train(cfg: TextConfig, inputs: TextInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, float]:
    import torch

    from attnlab.data.batching import TensorBatches
    from attnlab.data.imdb import LABELS
    from attnlab.engine import fit, seed_everything, training_device
    from attnlab.engine.distributed import is_main_process
    from attnlab.files import file_digest
    from attnlab.memory import require, training_bytes
    from attnlab.models.text import AveragedVectors, build_text_classifier

    saved = resumed_meta(run_dir, resume)
    if cfg.model.name in PRETRAINED:
        return _train_pretrained(cfg, inputs, run_dir, saved, resume=resume, progress=progress,
                                 allow_changed_data=allow_changed_data)
    data = _prepare(cfg, inputs, saved["vocab"] if saved else None)  # resuming: the run's own vocabulary
    files = _review_files(inputs)
    if is_main_process():
        print(f"features: {sum(len(t['lengths']) for t in data.tensors.values())} reviews from "
              f"{', '.join(files.values())} tokenized and indexed in {data.seconds:.1f} s "
              f"(vocabulary {len(data.vocab)})", flush=True)
    emb_dim = int(data.vectors.size(1)) if data.vectors is not None else None
    require(training_bytes(lambda: build_text_classifier(cfg.model, len(data.vocab), None, emb_dim=emb_dim)),
            what=f"training this {cfg.model.name} classifier (vocabulary {len(data.vocab):,}, "
                 f"model.dim={cfg.model.dim})", fix="lower model.vocab_size or model.dim",
            device=training_device(cfg.train.device))
    seed_everything(cfg.train.seed)
    model = build_text_classifier(cfg.model, len(data.vocab), data.vectors, num_classes=len(LABELS))
    splits = dict(data.tensors)
    if isinstance(model, AveragedVectors):  # frozen vectors: average each review once, not every epoch
        for name in ("train", "val"):
            t = splits[name]
            with torch.no_grad():
                feats = torch.cat([model.average(t["ids"][i:i + 1024], t["lengths"][i:i + 1024])
                                   for i in range(0, len(t["lengths"]), 1024)])
            splits[name] = {"features": feats, "lengths": t["lengths"], "label": t["label"]}
    bucket = "lengths" if cfg.data.bucket else None
    bs = cfg.train.batch_size
    train_b = TensorBatches(splits["train"], bs, bucket_by=bucket)
    val_b = TensorBatches(splits["val"], max(bs, 128), shuffle=False, bucket_by=bucket)
    inputs_used: dict[str, Any] = {"reviews": {"path": str(inputs.data_dir or inputs.train), "checksum": data.checksum,
                                               "files": files}}
    if inputs.embeddings is not None:
        md5 = file_digest(inputs.embeddings, "md5")
        inputs_used["word vectors"] = {"path": str(inputs.embeddings), "checksum": md5}
    meta = {"task": "text", "config": config_to_dict(cfg),
            "vocab": data.vocab, "labels": list(LABELS), "inputs": inputs_used,
            "embedding_dim": int(data.vectors.size(1)) if data.vectors is not None else None}
    metrics = fit(model, loss_fn, train_b, val_b, cfg.train, run_dir, meta=meta, resume=resume, progress=progress,
                  allow_changed_data=allow_changed_data)
    metrics["features_seconds"] = round(data.seconds, 3)
    return _tested(model, data.tensors, metrics, run_dir)


def _tested(model: nn.Module, tensors: dict[str, dict[str, Tensor]], metrics: dict[str, float],
            run_dir: Path) -> dict[str, float]:
    """``metrics`` plus the test set's report and calibration (when there is a test set)."""
    from attnlab.data.imdb import LABELS
    from attnlab.metrics import classification_report
    from attnlab.models.text import predict_logits

    test = tensors["test"]
    if len(test["lengths"]):
        metrics.update(classification_report(test["label"], predict_logits(model, test).argmax(-1), LABELS))
        metrics.update(calibration(model, tensors["val"], test, run_dir))
    return metrics


def _train_pretrained(cfg: TextConfig, inputs: TextInputs, run_dir: Path, saved: dict[str, Any] | None, *,
                      resume: bool | Path, progress: bool | None, allow_changed_data: bool) -> dict[str, float]:
    """``--model bert``: fine-tune pretrained weights (``--init``), reading the reviews with their
    WordPiece. Resuming, the shape, tokenizer and source come from the checkpoint (the weights
    from its ``training.pt``), so ``--init`` is not needed."""
    import time

    import torch

    from attnlab.data.batching import TensorBatches
    from attnlab.data.imdb import LABELS, digest, load_splits
    from attnlab.data.wordpiece import WordPiece, of_meta
    from attnlab.engine import fit, seed_everything, training_device
    from attnlab.engine.distributed import is_main_process
    from attnlab.memory import require, training_bytes
    from attnlab.models.bert import build_bert
    from attnlab.pretrained.bert import loaded, model_config
    from attnlab.pretrained.source import resolve, source_meta

    t0 = time.perf_counter()
    source: Source | None = None
    if saved is not None:
        tokenizer = of_meta(saved)
        pretrained = saved.get("pretrained")
        if tokenizer is None or not isinstance(pretrained, dict):
            raise AttnlabError(f"the checkpoint in {run_dir} holds no WordPiece tokenizer or pretrained source; "
                               "start a new run with --init")
        if inputs.init is not None:
            print("note: --resume continues from the run's own weights; --init is ignored", file=sys.stderr)
    else:
        if inputs.init is None:
            raise AttnlabError("model bert starts from pretrained weights: pass --init DIR (a BERT or DistilBERT "
                               "directory: config.json, model.safetensors, vocab.txt) or --init hf:NAME "
                               "(e.g. hf:bert-base-uncased)")
        source = resolve(inputs.init)
        if source.model_type not in ("bert", "distilbert"):
            raise AttnlabError(f"--init {inputs.init} is a {source.architecture}, not a BERT; --model bert takes a "
                               "BERT or DistilBERT (BertModel, BertForSequenceClassification, BertForMaskedLM, "
                               "DistilBert*)")
        tokenizer = WordPiece.from_dir(source.directory)
        arch = model_config(source.config)
        arch.max_len, arch.dropout = min(cfg.model.max_len, arch.max_positions), cfg.model.dropout
        cfg.model = arch  # the run's config records the checkpoint's shape: load_model rebuilds it from there
        pretrained = source_meta(source, with_checksum=True)
    m = cfg.model
    splits = load_splits(data_dir=inputs.data_dir, train=inputs.train, dev=inputs.dev, test=inputs.test,
                         val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    tensors: dict[str, dict[str, Tensor]] = {}
    for name, reviews in parts.items():
        enc = tokenizer.tensors([r.text for r in reviews], m.max_len)
        del enc["token_type_ids"]  # one text per review: segment A everywhere, the model's default
        enc["label"] = torch.tensor([r.label for r in reviews], dtype=torch.long)
        tensors[name] = enc
    seconds = time.perf_counter() - t0
    files = _review_files(inputs)
    if is_main_process():
        print(f"features: {sum(len(t['lengths']) for t in tensors.values())} reviews from {', '.join(files.values())} "
              f"read into WordPiece ids in {seconds:.1f} s (vocabulary {tokenizer.vocab_size})", flush=True)
    require(training_bytes(lambda: build_bert(m, m.vocab_size, num_classes=len(LABELS))),
            what=f"fine-tuning this BERT ({m.num_layers} layers, dim {m.dim})", fix="pick a smaller checkpoint",
            device=training_device(cfg.train.device))
    seed_everything(cfg.train.seed)
    if source is not None:
        found = loaded(source, m=m, labels=list(LABELS))
        model: nn.Module = found.model
        pretrained = {**pretrained, "new": found.new}
    else:
        model = build_bert(m, m.vocab_size, num_classes=len(LABELS))  # the checkpoint's weights are restored by fit
    bucket = "lengths" if cfg.data.bucket else None
    bs = cfg.train.batch_size
    train_b = TensorBatches(tensors["train"], bs, bucket_by=bucket)
    val_b = TensorBatches(tensors["val"], max(bs, 128), shuffle=False, bucket_by=bucket)
    inputs_used = {"reviews": {"path": str(inputs.data_dir or inputs.train),
                               "checksum": digest([r for p in parts.values() for r in p]), "files": files},
                   "pretrained weights": {"path": pretrained["source"], "checksum": pretrained["checksum"]}}
    meta = {"task": "text", "config": config_to_dict(cfg), "vocab": None, "labels": list(LABELS),
            "inputs": inputs_used, "embedding_dim": None, "pretrained": pretrained,
            "tokenizer": {"kind": "wordpiece", "json": tokenizer.to_json()}}
    metrics = fit(model, loss_fn, train_b, val_b, cfg.train, run_dir, meta=meta, resume=resume, progress=progress,
                  allow_changed_data=allow_changed_data)
    metrics["features_seconds"] = round(seconds, 3)
    return _tested(model, tensors, metrics, run_dir)


def load_model(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained classifier (eval mode) and its meta; ``meta["config"]`` is the full TextConfig."""
    from attnlab.data.imdb import LABELS
    from attnlab.engine import load_checkpoint
    from attnlab.models.text import build_text_classifier

    ckpt = load_checkpoint(checkpoint, task="text")
    cfg = config_from_dict(TextConfig, ckpt.meta["config"])
    vocab_size = cfg.model.vocab_size if cfg.model.name in PRETRAINED else len(ckpt.meta["vocab"])
    model = build_text_classifier(cfg.model, vocab_size, None, emb_dim=ckpt.meta.get("embedding_dim"),
                                  num_classes=len(ckpt.meta.get("labels", LABELS)))
    ckpt.load_into(model)
    return model.eval(), ckpt.meta


def evaluate(checkpoint: str | Path, inputs: TextInputs, *, device: str = "auto") -> dict[str, float]:
    import torch

    from attnlab.data.imdb import LABELS, load_splits
    from attnlab.data.sentiment import encode_reviews
    from attnlab.data.wordpiece import of_meta
    from attnlab.engine import training_device
    from attnlab.metrics import classification_report, expected_calibration_error
    from attnlab.models.text import predict_logits

    model, meta = _load_any(checkpoint)
    recorded = meta.get("inputs", {}).get("reviews", {}).get("files") or {}
    if not _review_files(inputs) and recorded and all(Path(p).exists() for p in recorded.values()):
        files: dict[str, Any] = {name: Path(p) for name, p in recorded.items()}
        inputs = replace(inputs, **files)
        print(f"eval: the reviews the run was trained on: {', '.join(recorded.values())}", file=sys.stderr)
    cfg = config_from_dict(TextConfig, meta["config"])
    splits = load_splits(data_dir=inputs.data_dir, train=inputs.train, dev=inputs.dev, test=inputs.test,
                         val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed, check_labels=False)
    reviews, prefix = (splits.test, "test_") if splits.test else (splits.val, "val_")
    wordpiece = of_meta(meta)
    if wordpiece is not None:  # a BERT: its own tokenizer, the raw text
        enc = wordpiece.tensors([r.text for r in reviews], cfg.model.max_len)
        enc["label"] = torch.tensor([r.label for r in reviews], dtype=torch.long)
    else:
        enc = encode_reviews(reviews, meta["vocab"], cfg.model.max_len, cache_dir=inputs.cache_dir,
                             workers=inputs.workers)
    model.to(training_device(device))
    logits = predict_logits(model, enc)
    out = classification_report(enc["label"], logits.argmax(-1), meta.get("labels", LABELS), prefix=prefix)
    out[f"{prefix}ece"] = expected_calibration_error(torch.softmax(logits, -1), enc["label"])[0]
    return out


class ReviewReader:
    """How a sentiment classifier with attention reads a review (:class:`attnlab.attended.Reader`,
    kind ``classifier``): the training run's tokenizer and vocabulary, its first ``max_len`` tokens."""

    kind = "classifier"
    image_size = 0

    def __init__(self, meta: dict[str, Any]) -> None:
        from attnlab.data.imdb import LABELS

        self.vocab: list[str] = meta["vocab"]
        self.max_len = int(meta["config"]["model"]["max_len"])
        self.labels = list(meta.get("labels", LABELS))
        self.title = f"sentiment {meta['config']['model']['name']} classifier"

    def text(self, text: str, limit: int) -> Any:
        from attnlab.attended import Encoded
        from attnlab.data.sentiment import encode_texts

        keep = min(self.max_len, limit)
        enc, seen = encode_texts([text], self.vocab, len(text) + 1)  # every token, to count them
        notes = []
        if len(seen[0]) > keep:
            why = f"the limit of {limit}" if keep < self.max_len else f"the model's max_len {self.max_len}"
            notes.append(f"the text has {len(seen[0])} tokens; the model reads the first {keep} ({why})")
        return Encoded((enc["ids"][:, :keep], enc["lengths"].clamp(max=keep)), seen[0][:keep], notes)


class WordPieceReader:
    """How a BERT reads a text (:class:`attnlab.attended.Reader`, kind ``classifier``): its WordPiece,
    ``[CLS] text [SEP]``, or a sentence pair typed as ``A [SEP] B`` -> ``[CLS] A [SEP] B [SEP]`` with
    token types 0 for A's part and 1 for B's (the inputs are ``(ids, lengths, token_type_ids)``)."""

    kind = "classifier"
    image_size = 0
    PAIR = "[SEP]"  # what separates the two texts of a pair in what a person types

    def __init__(self, meta: dict[str, Any], tokenizer: WordPiece) -> None:
        self.tokenizer = tokenizer
        self.max_len = int(meta["config"]["model"]["max_len"])
        self.labels = list(meta.get("labels") or [])
        source = (meta.get("pretrained") or {}).get("source")
        self.title = f"BERT classifier ({source})" if source else "BERT classifier"

    def text(self, text: str, limit: int) -> Any:
        from attnlab.attended import Encoded

        a, sep, b = text.partition(self.PAIR)
        pair = b.strip() if sep else None
        first = a.strip() if sep else text
        keep = min(self.max_len, limit)
        whole = self.tokenizer.encode(first, pair)
        enc = self.tokenizer.tensors([first], keep, [pair] if pair is not None else None)
        notes = []
        if len(whole.ids) > keep:
            why = f"the limit of {limit}" if keep < self.max_len else f"the model's max_len {self.max_len}"
            notes.append(f"the text has {len(whole.ids)} WordPiece tokens; the model reads {keep} ({why})")
        if pair is not None:
            notes.append("a sentence pair: token type 0 up to the first [SEP], 1 after it")
        n = int(enc["lengths"][0])
        tokens = self.tokenizer.encode(first, pair, max_len=keep).tokens[:n]
        return Encoded((enc["ids"][:, :n], enc["lengths"], enc["token_type_ids"][:, :n]), tokens, notes)


def reader(model: nn.Module, meta: dict[str, Any]) -> ReviewReader | WordPieceReader | None:
    """How a model with attention reads a review (the door to its ``attend``); None for the
    models without attention (logreg, ffnn, rnn)."""
    from attnlab.data.wordpiece import of_meta

    if not hasattr(model, "attend"):
        return None
    wordpiece = of_meta(meta)
    if wordpiece is not None:
        return WordPieceReader(meta, wordpiece)
    if meta.get("vocab") is None and not meta.get("pretrained"):
        raise KeyError("vocab")  # a model in memory without its words: attnlab.explore names vocab=
    if meta.get("vocab") is None:
        where = (meta.get("pretrained") or {}).get("source", "the model")
        raise AttnlabError(f"{where} ships no tokenizer (tokenizer.json or vocab.txt), so a text cannot be read; "
                           "copy the model's vocab.txt into its directory")
    return ReviewReader(meta)


def load_pretrained(source: Source) -> tuple[nn.Module, dict[str, Any]]:
    """A BERT / DistilBERT directory or ``hf:NAME`` as a text model (eval mode, CPU) and the meta a
    ``--model bert`` run would have: its config, classes (``id2label``), WordPiece and source.
    A checkpoint without a classifier gets a new one (seed 0), and a note says so."""
    import torch

    from attnlab.pretrained.bert import loaded, tokenizer_meta
    from attnlab.pretrained.source import source_meta

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        found = loaded(source)
    if found.new:
        print(f"note: {source.spec} has no {' or '.join(found.new)}: a new one (random, seed 0) stands in, so its "
              "predictions mean nothing until fine-tuned (attnlab train text --model bert --init ...)", file=sys.stderr)
    meta = {"task": "text", "config": config_to_dict(TextConfig(model=found.config)), "labels": found.labels,
            "vocab": None, "embedding_dim": None, "tokenizer": tokenizer_meta(source.directory),
            "pretrained": {**source_meta(source), "new": found.new}}
    return found.model.eval(), meta


def _load_any(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A run's checkpoint (:func:`load_model`) or a pretrained source (:func:`load_pretrained`)."""
    from attnlab.pretrained.source import is_pretrained, resolve

    if is_pretrained(checkpoint):
        return load_pretrained(resolve(checkpoint))
    return load_model(checkpoint)
