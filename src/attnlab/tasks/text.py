"""Sentiment classification of IMDB reviews (``attnlab train text --model NAME``).

Data: ``--data-dir`` (an extracted ``aclImdb/``, its parent, or ``aclImdb_v1.tar.gz``) or TSV
files (``--train F --dev F [--test F]``, ``id<TAB>label<TAB>text``). Reviews are cleaned
(lower case, ``<br />`` removed) and tokenized with ``nltk.word_tokenize`` on every core, the
tokens cached (:mod:`attnlab.data.features`), then indexed by the vocabulary of the word
vectors (``--embeddings``) or, for the Transformer and RNN without vectors, by the most
frequent training words. Each review keeps its first ``model.max_len`` tokens.

Models (:mod:`attnlab.models.text`): ``logreg``, ``ffnn``, ``attention`` (need ``--embeddings``),
``transformer``, ``rnn``. ``--model NAME`` picks the model and, unless ``--preset`` is given,
the preset of the same name. Training goes through :func:`attnlab.engine.fit` with early
stopping (``train.patience``); the best checkpoint is then evaluated on the test set:
accuracy, per-class precision / recall / F1 and the confusion matrix (``test_confusion_T_P``:
reviews of true class T predicted as P).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.config import build_config, config_from_dict, config_to_dict
from attnlab.data.embeddings import PAD_TOKEN, UNK_TOKEN, read_embeddings
from attnlab.data.features import build_vocab, encode, tokenize_texts
from attnlab.data.imdb import LABELS, load_splits
from attnlab.engine import TrainConfig, fit, load_checkpoint
from attnlab.engine.batches import epoch_generator, shard
from attnlab.engine.loop import seed_everything
from attnlab.errors import AttnlabError
from attnlab.models.text import (FFNN, AttentionClassifier, LogisticRegressionClassifier,
                                 TextClassificationRNN, TextClassificationTransformer, AveragedVectors)

EXAMPLE = """\
attnlab train text --model logreg --data-dir data/aclImdb --embeddings glove.6B.50d.txt --out runs/text-logreg
attnlab train text --model transformer --data-dir data/aclImdb_v1.tar.gz --embeddings glove.6B.50d.txt
attnlab train text --model rnn --train train.tsv --dev dev.tsv --test test.tsv --set model.cell=lstm
attnlab train text --list-presets"""

MODELS = ("logreg", "ffnn", "attention", "transformer", "rnn")
NEEDS_VECTORS = ("logreg", "ffnn", "attention")


@dataclass
class TextModelConfig:
    name: Literal["logreg", "ffnn", "attention", "transformer", "rnn"] = "logreg"
    max_len: int = 400  # tokens kept per review (the first ones); longer reviews are truncated
    vocab_size: int = 50000  # words read from --embeddings, or kept from the training data
    min_count: int = 2  # without --embeddings: keep training words seen at least this often
    hidden_size: int = 20  # ffnn hidden units; rnn hidden size per direction
    query_key_size: int = 32  # attention: d_k
    dim: int = 64  # transformer / rnn embedding width (the first 50 start from --embeddings)
    num_heads: int = 2  # transformer
    mlp_dim: int = 128  # transformer feed-forward width
    num_layers: int = 1  # transformer blocks / rnn layers
    dropout: float = 0.1
    pooling: str = "mean"  # transformer: mean|max|meanmax; rnn: last|max
    cell: Literal["lstm", "gru"] = "lstm"  # rnn
    bidirectional: bool = True  # rnn
    packed: bool = False  # rnn: run over PackedSequences (same numbers, ~20x slower on this CPU)


@dataclass
class TextDataConfig:
    val_fraction: float = 0.1  # carved from train (with split_seed) when there is no --dev
    split_seed: int = 0
    bucket: bool = True  # batch reviews of similar length together (less padding, same results)


@dataclass
class TextConfig:
    model: TextModelConfig = field(default_factory=TextModelConfig)
    data: TextDataConfig = field(default_factory=TextDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=10, batch_size=64, lr=1e-3, warmup_steps=50, weight_decay=0.01, log_every=50,
        patience=3, monitor="val_accuracy", precision="fp32"))

    PRESETS: ClassVar[dict[str, dict]] = {
        # The measured recipes (README "Sentiment"): one per model, picked by --model.
        "logreg": {"model.name": "logreg", "model.max_len": 1000, "train.epochs": 80,
                   "train.batch_size": 256, "train.lr": 2e-2, "train.weight_decay": 0.0,
                   "train.patience": 10, "train.monitor": "val_loss", "train.warmup_steps": 10},
        "ffnn": {"model.name": "ffnn", "model.max_len": 1000, "train.epochs": 80,
                 "train.batch_size": 256, "train.lr": 1e-2, "train.weight_decay": 0.0,
                 "train.patience": 10, "train.monitor": "val_loss", "train.warmup_steps": 10},
        "attention": {"model.name": "attention", "model.max_len": 256, "model.query_key_size": 32,
                      "train.epochs": 4, "train.batch_size": 64, "train.lr": 3e-3,
                      "train.patience": 2, "train.warmup_steps": 20, "train.time_limit": 140.0},
        "transformer": {"model.name": "transformer", "model.max_len": 512, "model.dim": 64,
                        "model.num_heads": 2, "model.mlp_dim": 128, "model.num_layers": 1,
                        "model.dropout": 0.2, "model.pooling": "meanmax", "model.vocab_size": 50000,
                        "train.epochs": 5, "train.batch_size": 64, "train.lr": 1.5e-3,
                        "train.weight_decay": 0.05, "train.patience": 4, "train.warmup_steps": 100,
                        "train.eval_every": 176, "train.time_limit": 840.0},
        "rnn": {"model.name": "rnn", "model.max_len": 320, "model.dim": 64, "model.hidden_size": 64,
                "model.cell": "lstm", "model.pooling": "max", "model.dropout": 0.2,
                "train.epochs": 6, "train.batch_size": 128, "train.lr": 4e-3, "train.patience": 4,
                "train.warmup_steps": 30, "train.eval_every": 88, "train.time_limit": 840.0},
        # Seconds; for tests and smoke runs.
        "tiny": {"model.max_len": 32, "model.dim": 16, "model.mlp_dim": 32, "model.hidden_size": 8,
                 "model.query_key_size": 8, "model.vocab_size": 2000, "model.min_count": 1,
                 "train.epochs": 1, "train.batch_size": 8, "train.warmup_steps": 2,
                 "train.log_every": 5, "train.patience": None},
    }
    DEFAULT_PRESET: ClassVar[str] = "logreg"


CONFIG = TextConfig


# --------------------------------------------------------------------------- CLI flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=MODELS, default=None,
                        help="which classifier (default: the preset's; --model NAME alone also "
                             "selects preset NAME)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="an extracted aclImdb/ folder, its parent, or aclImdb_v1.tar.gz "
                             "(`attnlab data fetch imdb` downloads it)")
    parser.add_argument("--train", dest="train_file", type=Path, default=None,
                        help="TSV training file: id<TAB>label<TAB>text, labels pos/neg")
    parser.add_argument("--dev", dest="dev_file", type=Path, default=None,
                        help="TSV validation file (default: carved from the training data)")
    parser.add_argument("--test", dest="test_file", type=Path, default=None, help="TSV test file")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="GloVe-format word vectors (word v1 ... vD per line, .gz ok); required "
                             "by logreg, ffnn and attention, optional initialisation otherwise")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where tokenized reviews are cached (default ~/.cache/attnlab)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for tokenization (default: one per core)")
    parser.epilog = ((parser.epilog or "") + "\nReviews longer than model.max_len tokens are "
                     "truncated to their first model.max_len tokens (1000 for logreg/ffnn, 256 for "
                     "attention, 512 for transformer, 320 for rnn); see --print-config.").strip()


def resolve_config(cfg: TextConfig, args: argparse.Namespace) -> TextConfig:
    """Apply ``--model``: with no explicit ``--preset`` it selects the preset of that name."""
    model = getattr(args, "model", None)
    if model is None or model == cfg.model.name:
        return cfg
    if getattr(args, "preset", None) is None:
        overrides = getattr(args, "set", None) or getattr(args, "overrides", None) or []
        cfg = build_config(TextConfig, model, list(overrides))
    cfg.model.name = model
    return cfg


# --------------------------------------------------------------------------- data


class BucketBatches:
    """Length-bucketed batches of a dict of tensors: shuffle, sort chunks of 50 batches by
    length, shuffle the batches. Deterministic given (epoch, seed), as the engine requires."""

    def __init__(self, tensors: dict[str, Tensor], batch_size: int, *, shuffle: bool = True,
                 bucket: bool = True) -> None:
        self.tensors, self.batch_size, self.shuffle, self.bucket = tensors, batch_size, shuffle, bucket
        self.n = len(tensors["lengths"])

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def iter_epoch(self, epoch: int, seed: int, rank: int = 0, world: int = 1):
        g = epoch_generator(epoch, seed)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        if self.bucket:
            span = self.batch_size * 50
            lengths = self.tensors["lengths"]
            order = torch.cat([c[torch.argsort(lengths[c], stable=True)] for c in order.split(span)])
        batches = list(order.split(self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        for idx in batches:
            if len(idx) < world:
                continue
            idx = shard(idx, rank, world)
            yield {k: t[idx] for k, t in self.tensors.items()}


@dataclass
class Prepared:
    tensors: dict[str, dict[str, Tensor]]  # split -> {"ids", "lengths", "label"}
    vocab: list[str]
    vectors: Tensor | None
    seconds: float


def prepare(cfg: TextConfig, args: argparse.Namespace) -> Prepared:
    """Load the reviews, tokenize (cached, all cores), index and pad them; time it."""
    t0 = time.perf_counter()
    m = cfg.model
    emb_path = getattr(args, "embeddings", None)
    if m.name in NEEDS_VECTORS and emb_path is None:
        raise AttnlabError(f"model '{m.name}' needs pretrained word vectors: pass --embeddings PATH "
                           "(GloVe text format, e.g. glove.6B.50d.txt)")
    splits = load_splits(data_dir=getattr(args, "data_dir", None), train=getattr(args, "train_file", None),
                         dev=getattr(args, "dev_file", None), test=getattr(args, "test_file", None),
                         val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    texts = [r.text for name in parts for r in parts[name]]
    tok = tokenize_texts(texts, cache_dir=getattr(args, "cache_dir", None), workers=getattr(args, "workers", None))
    rows, start = {}, 0
    for name, reviews in parts.items():
        rows[name] = np.arange(start, start + len(reviews))
        start += len(reviews)
    vectors = None
    if emb_path is not None:
        vectors, vocab = read_embeddings(emb_path, vocab_size=m.vocab_size)
    else:
        vocab = build_vocab(tok, rows["train"], max_size=m.vocab_size, min_count=m.min_count,
                            specials=(PAD_TOKEN, UNK_TOKEN))
    word_to_id = {w: i for i, w in enumerate(vocab)}
    tensors = {}
    for name, reviews in parts.items():
        enc = encode(tok, rows[name], word_to_id, max_len=m.max_len)
        enc["label"] = torch.tensor([r.label for r in reviews], dtype=torch.long)
        tensors[name] = enc
    return Prepared(tensors, vocab, vectors, time.perf_counter() - t0)


# --------------------------------------------------------------------------- models


def build_model(m: TextModelConfig, vocab_size: int, vectors: Tensor | None, emb_dim: int | None = None) -> nn.Module:
    """The classifier named by ``m.name``; ``vectors`` None builds an empty table (for loading)."""
    if m.name in NEEDS_VECTORS:
        table = vectors if vectors is not None else torch.zeros(vocab_size, emb_dim or 50)
        if m.name == "logreg":
            return LogisticRegressionClassifier(embeddings=table, num_classes=len(LABELS))
        if m.name == "ffnn":
            return FFNN(embeddings=table, hidden_size=m.hidden_size, num_classes=len(LABELS))
        return AttentionClassifier(embeddings=table, query_key_size=m.query_key_size, num_classes=len(LABELS))
    if m.name == "transformer":
        pooling = m.pooling if m.pooling in ("mean", "max", "meanmax") else "mean"
        return TextClassificationTransformer(
            vocab_size=vocab_size, max_len=m.max_len, dim=m.dim, num_heads=m.num_heads,
            mlp_dim=m.mlp_dim, num_layers=m.num_layers, dropout=m.dropout, pooling=pooling,
            num_classes=len(LABELS), pretrained=vectors)
    pooling = m.pooling if m.pooling in ("last", "max") else "max"
    return TextClassificationRNN(
        vocab_size=vocab_size, dim=m.dim, hidden_size=m.hidden_size, num_layers=m.num_layers,
        cell=m.cell, bidirectional=m.bidirectional, dropout=m.dropout, pooling=pooling,
        num_classes=len(LABELS), packed=m.packed, pretrained=vectors)


def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
    if "features" in batch:  # averaged word vectors, computed once (logreg, ffnn)
        logits = model.classify(batch["features"])
    else:
        logits = model(batch["ids"], batch["lengths"])
    labels = batch["label"]
    loss = F.cross_entropy(logits.float(), labels)
    return loss, {"loss_sum": loss.detach() * len(labels), "count": len(labels),
                  "correct": (logits.argmax(-1) == labels).sum()}


# --------------------------------------------------------------------------- metrics


@torch.no_grad()
def predict_batches(model: nn.Module, tensors: dict[str, Tensor], batch_size: int = 256) -> Tensor:
    """Predicted class of every row (length-sorted batches, original order returned)."""
    model.eval()
    device = next(model.parameters()).device
    order = torch.argsort(tensors["lengths"])
    preds = torch.empty(len(order), dtype=torch.long)
    for idx in order.split(batch_size):
        logits = model(tensors["ids"][idx].to(device), tensors["lengths"][idx].to(device))
        preds[idx] = logits.argmax(-1).cpu()
    return preds


def classification_report(labels: Tensor, preds: Tensor, prefix: str = "test_") -> dict[str, float]:
    """Accuracy, per-class precision / recall / F1 and the confusion matrix, as flat floats."""
    k = len(LABELS)
    conf = torch.bincount(labels * k + preds, minlength=k * k).reshape(k, k)  # rows: true, cols: predicted
    out = {f"{prefix}accuracy": float((labels == preds).float().mean()) if len(labels) else 0.0}
    for c, name in enumerate(LABELS):
        tp = float(conf[c, c])
        precision = tp / max(float(conf[:, c].sum()), 1.0)
        recall = tp / max(float(conf[c, :].sum()), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        out.update({f"{prefix}precision_{name}": precision, f"{prefix}recall_{name}": recall,
                    f"{prefix}f1_{name}": f1})
    for t, tn in enumerate(LABELS):
        for p, pn in enumerate(LABELS):
            out[f"{prefix}confusion_{tn}_{pn}"] = float(conf[t, p])
    return out


# --------------------------------------------------------------------------- train / eval


def train(cfg: TextConfig, args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    cfg = resolve_config(cfg, args)
    # --model NAME may have picked another preset than the one the CLI saved: save the real one.
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    data = prepare(cfg, args)
    print(f"features: {sum(len(t['lengths']) for t in data.tensors.values())} reviews tokenized and "
          f"indexed in {data.seconds:.1f} s (vocabulary {len(data.vocab)})", flush=True)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, len(data.vocab), data.vectors)
    if isinstance(model, AveragedVectors):  # frozen vectors: average each review once, not every epoch
        for name in ("train", "val"):
            t = data.tensors[name]
            with torch.no_grad():
                feats = torch.cat([model.average(t["ids"][i:i + 1024], t["lengths"][i:i + 1024])
                                   for i in range(0, len(t["lengths"]), 1024)])
            data.tensors[name] = {"features": feats, "lengths": t["lengths"], "label": t["label"]}
    bs = cfg.train.batch_size
    train_b = BucketBatches(data.tensors["train"], bs, bucket=cfg.data.bucket)
    val_b = BucketBatches(data.tensors["val"], max(bs, 128), shuffle=False, bucket=cfg.data.bucket)
    meta = {"task": "text", "model": config_to_dict(cfg.model), "config": config_to_dict(cfg),
            "vocab": data.vocab, "labels": list(LABELS),
            "embedding_dim": int(data.vectors.size(1)) if data.vectors is not None else None}
    t0 = time.perf_counter()
    metrics = fit(model, loss_fn, train_b, val_b, cfg.train, run_dir, meta=meta,
                  resume=getattr(args, "resume", False), progress=getattr(args, "progress", None))
    metrics["features_seconds"] = round(data.seconds, 3)
    metrics["fit_seconds"] = round(time.perf_counter() - t0, 3)
    if len(data.tensors["test"]["lengths"]):
        t = data.tensors["test"]
        metrics.update(classification_report(t["label"], predict_batches(model, t)))
    metrics["total_seconds"] = round(metrics["features_seconds"] + metrics["fit_seconds"], 3)
    return metrics


def load_model(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any], TextConfig]:
    """Rebuild a trained classifier from a checkpoint (or run) directory -> (model, meta, config)."""
    ckpt = load_checkpoint(checkpoint, task="text")
    cfg = config_from_dict(TextConfig, ckpt.meta["config"])
    vocab = ckpt.meta["vocab"]
    model = build_model(cfg.model, len(vocab), None, ckpt.meta.get("embedding_dim"))
    ckpt.load_into(model)
    model.eval()
    return model, ckpt.meta, cfg


def evaluate(args: argparse.Namespace, run_dir: Path) -> dict[str, float]:
    model, meta, cfg = load_model(args.checkpoint)
    splits = load_splits(data_dir=getattr(args, "data_dir", None), train=getattr(args, "train_file", None),
                         dev=getattr(args, "dev_file", None), test=getattr(args, "test_file", None),
                         val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    reviews = splits.test or splits.val
    prefix = "test_" if splits.test else "val_"
    tok = tokenize_texts([r.text for r in reviews], cache_dir=getattr(args, "cache_dir", None),
                         workers=getattr(args, "workers", None))
    enc = encode(tok, np.arange(len(reviews)), {w: i for i, w in enumerate(meta["vocab"])},
                 max_len=cfg.model.max_len)
    labels = torch.tensor([r.label for r in reviews], dtype=torch.long)
    return classification_report(labels, predict_batches(model, enc), prefix=prefix)


def encode_texts(texts: list[str], vocab: list[str], max_len: int) -> tuple[dict[str, Tensor], list[list[str]]]:
    """Tokenize and index raw texts for a trained model -> (batch, the tokens the model sees)."""
    tok = tokenize_texts(texts, use_cache=False, workers=1)
    enc = encode(tok, np.arange(len(texts)), {w: i for i, w in enumerate(vocab)}, max_len=max_len)
    seen = [tok.tokens(i)[:max_len] or [UNK_TOKEN] for i in range(len(texts))]
    return enc, seen
