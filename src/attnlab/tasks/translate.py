"""Translation (``attnlab train translate --model transformer|rnn``): English -> French on Tatoeba.

Data: ``--data-dir DIR`` (holding ``fra-eng/fra.txt``, the layout of manythings.org's
``fra-eng.zip``; ``attnlab data fetch tatoeba`` writes it) or ``--data FILE``, any TSV of
``source<TAB>target`` lines (later columns ignored). The pairs are split by source sentence with
``data.split_seed`` (:mod:`attnlab.data.pairs`), so alternate translations of one English
sentence never straddle two splits. A byte-level BPE (:mod:`attnlab.data.bpe`) is fitted on the
training split, one shared vocabulary or one per side (``data.shared_vocab``), and kept in the
checkpoint's meta; every sentence keeps its first ``model.max_len`` pieces.

Models: the encoder-decoder Transformer (:mod:`attnlab.models.seq2seq`) and the GRU/LSTM
baseline with Luong attention (:mod:`attnlab.models.rnn_seq2seq`), trained by
:func:`attnlab.engine.fit` with teacher forcing and optional label smoothing
(``loss.label_smoothing``; the logged loss is the plain cross-entropy per target piece, and
``val_accuracy`` the share of target pieces predicted right). After training, the best
checkpoint translates the test split (``decode.beam``, ``decode.length_penalty``) and sacreBLEU
scores it: ``test_bleu``, ``test_chrf`` and their signatures go to ``metrics.json``, each
sentence with its reference and translation to ``run_dir/translations.tsv``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, cast

from attnlab.config import Count, Fraction, Range, Rate, Seed, config_from_dict, config_to_dict
from attnlab.engine.config import TrainConfig
from attnlab.errors import AttnlabError
from attnlab.models.configs import SEQ2SEQ_MODELS, Seq2SeqConfig
from attnlab.tasks import resumed_meta

if TYPE_CHECKING:
    from torch import Tensor, nn

    from attnlab.data.bpe import BPETokenizer
    from attnlab.data.pairs import Pair
    from attnlab.losses import Stats

SPECIALS = ("<pad>", "<s>", "</s>")  # ids 0, 1, 2 in every vocabulary
PAD, BOS, EOS = 0, 1, 2

EXAMPLE = """\
attnlab data fetch tatoeba --dest data
attnlab train translate --model transformer --data-dir data --out runs/translate-transformer
attnlab train translate --model rnn --data pairs.tsv --set decode.beam=1
attnlab translate --checkpoint runs/translate-transformer "I am cold." """


@dataclass
class TranslateDataConfig:
    vocab_size: Count = 8000  # BPE vocabulary (each one, when not shared), special tokens included
    shared_vocab: bool = True  # one vocabulary fitted on both sides (needed by model.shared_embeddings)
    val_fraction: Fraction = 0.01  # of the distinct source sentences
    test_fraction: Fraction = 0.02
    split_seed: Seed = 0
    max_pairs: Count | None = None  # read only the first N pairs of the file (None: all)


@dataclass
class LossConfig:
    label_smoothing: Rate = 0.1


@dataclass
class DecodeConfig:
    beam: Count = 4  # 1: greedy
    length_penalty: Annotated[float, Range(ge=0)] = 0.6  # GNMT's alpha (0: raw summed log-probabilities)
    batch_size: Count = 64  # sentences decoded together
    max_test: Count | None = None  # translate only the first N distinct test sources (None: all)


@dataclass
class TranslateConfig:
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    data: TranslateDataConfig = field(default_factory=TranslateDataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=100, batch_size=96, lr=1e-3, warmup_steps=400, weight_decay=0.01, beta2=0.98, log_every=50,
        eval_every=400, precision="fp32"))

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # The 20-minute CPU recipes of the README's comparison (same data, tokenizer and budget);
        # `--model NAME` picks the one of that name.
        # (the RNN takes about 1.75 times as many steps per second as the Transformer on the 2-core CPU)
        "transformer": {"model.name": "transformer", "train.max_steps": 2400},
        "rnn": {"model.name": "rnn", "model.dim": 256, "model.hidden_size": 256, "model.encoder_layers": 1,
                "model.dropout": 0.2, "train.max_steps": 4200},
        # Seconds; for tests and smoke runs.
        "tiny": {"model.dim": 16, "model.num_heads": 2, "model.mlp_dim": 32, "model.encoder_layers": 1,
                 "model.decoder_layers": 1, "model.hidden_size": 16, "model.max_len": 16, "model.dropout": 0.0,
                 "data.vocab_size": 300, "data.val_fraction": 0.1, "data.test_fraction": 0.1,
                 "decode.beam": 2, "train.max_steps": 12, "train.batch_size": 8, "train.warmup_steps": 2,
                 "train.eval_every": 6, "train.log_every": 4},
    }
    DEFAULT_PRESET: ClassVar[str] = "transformer"

    def check(self) -> None:
        if self.model.shared_embeddings and not self.data.shared_vocab:
            raise AttnlabError("model.shared_embeddings needs one vocabulary: set data.shared_vocab=true, or "
                               "model.shared_embeddings=false for two")


def _path(help_text: str) -> Any:
    return field(default=None, metadata={"help": help_text})


@dataclass
class TranslateInputs:
    data_dir: Path | None = _path("a folder holding fra-eng/fra.txt "
                                  "(`attnlab data fetch tatoeba --dest DIR` writes it)")
    data: Path | None = _path("a TSV of sentence pairs: source<TAB>target per line (later columns ignored)")
    translations: Path | None = _path("eval: also write the test translations to this TSV "
                                      "(training always writes run_dir/translations.tsv)")


CONFIG, INPUTS = TranslateConfig, TranslateInputs
MODELS = SEQ2SEQ_MODELS  # `--model NAME` picks the model and the preset of that name


# --------------------------------------------------------------------------- data
@dataclass
class Tokenizers:
    source: BPETokenizer
    target: BPETokenizer
    shared: bool

    def to_meta(self) -> dict[str, Any]:
        if self.shared:
            return {"shared": True, "source": self.source.to_json()}
        return {"shared": False, "source": self.source.to_json(), "target": self.target.to_json()}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Tokenizers:
        from attnlab.data.bpe import BPETokenizer

        src = BPETokenizer.from_json(meta["source"])
        return cls(src, src if meta.get("shared") else BPETokenizer.from_json(meta["target"]), bool(meta.get("shared")))


def fit_tokenizers(cfg: TranslateDataConfig, train: list[Pair]) -> Tokenizers:
    from attnlab.data.bpe import BPETokenizer

    if cfg.shared_vocab:
        tok = BPETokenizer.fit([s for s, _ in train] + [t for _, t in train], cfg.vocab_size, SPECIALS)
        return Tokenizers(tok, tok, True)
    return Tokenizers(BPETokenizer.fit([s for s, _ in train], cfg.vocab_size, SPECIALS),
                      BPETokenizer.fit([t for _, t in train], cfg.vocab_size, SPECIALS), False)


def encode_pairs(pairs: list[Pair], tok: Tokenizers, max_len: int) -> dict[str, Tensor]:
    """Padded id tensors: ``src`` (N, S) the source pieces, ``tgt`` (N, T) ``<s>`` + target pieces
    + ``</s>``, each side cut to ``max_len`` pieces; ``length`` (N,) src + tgt pieces (for bucketing)."""
    import torch

    srcs = [ids[:max_len] for ids in tok.source.encode_batch([s for s, _ in pairs])]
    tgts = [[BOS, *ids[:max_len], EOS] for ids in tok.target.encode_batch([t for _, t in pairs])]
    S = max((len(s) for s in srcs), default=1) or 1
    T = max((len(t) for t in tgts), default=2)
    src = torch.full((len(pairs), S), PAD, dtype=torch.long)
    tgt = torch.full((len(pairs), T), PAD, dtype=torch.long)
    for i, (s, t) in enumerate(zip(srcs, tgts)):
        src[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        tgt[i, : len(t)] = torch.tensor(t, dtype=torch.long)
    length = torch.tensor([len(s) + len(t) for s, t in zip(srcs, tgts)], dtype=torch.long)
    return {"src": src, "tgt": tgt, "length": length}


def _load_pairs(cfg: TranslateConfig, inputs: TranslateInputs) -> tuple[Path, Any]:
    from attnlab.data.pairs import find_pairs_file, read_pairs, split_pairs

    path = find_pairs_file(inputs.data, inputs.data_dir)
    pairs = read_pairs(path)
    if cfg.data.max_pairs is not None:
        pairs = pairs[: cfg.data.max_pairs]
    d = cfg.data
    splits = split_pairs(pairs, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.split_seed)
    if not splits.train:
        raise AttnlabError(f"{path} leaves no training pairs after the split ({len(pairs)} pairs); pass more pairs "
                           "or lower data.val_fraction and data.test_fraction")
    return path, splits


def build_model(cfg: Seq2SeqConfig, tok: Tokenizers) -> nn.Module:
    from attnlab.models.rnn_seq2seq import RNNSeq2Seq
    from attnlab.models.seq2seq import Seq2SeqTransformer

    cls = Seq2SeqTransformer if cfg.name == "transformer" else RNNSeq2Seq
    return cls(cfg, tok.source.vocab_size, tok.target.vocab_size, pad_id=PAD)


class TranslationLoss:
    """Teacher forcing: the logits at target position ``i`` predict piece ``i + 1``; padding is
    skipped. Back-propagates the label-smoothed loss; ``stats`` sum the plain cross-entropy."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Stats]:
        import torch
        import torch.nn.functional as F

        src_len = int((batch["src"] != PAD).sum(1).max())
        tgt_len = int((batch["tgt"] != PAD).sum(1).max())
        src, tgt = batch["src"][:, :src_len], batch["tgt"][:, :tgt_len]  # this batch's own padding only
        logits = model(src, tgt[:, :-1]).float()  # (B, T-1, V)
        target = tgt[:, 1:].reshape(-1)
        flat = logits.reshape(-1, logits.size(-1))
        loss = F.cross_entropy(flat, target, ignore_index=PAD, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            real = target != PAD
            count = real.sum()
            plain = F.cross_entropy(flat, target, ignore_index=PAD, reduction="sum")
            correct = ((flat.argmax(-1) == target) & real).sum()
        return loss, {"loss_sum": plain, "count": count, "correct": correct}


# --------------------------------------------------------------------------- translating and scoring
def translate(model: nn.Module, tok: Tokenizers, texts: list[str], cfg: TranslateConfig, *,
              beam: int | None = None, device: Any = "cpu") -> list[str]:
    """The translations of ``texts`` (each source cut to ``model.max_len`` pieces)."""
    from attnlab.models.decoding_seq2seq import translate_ids

    sources = [ids[: cfg.model.max_len] for ids in tok.source.encode_batch(texts)]
    found = translate_ids(model, sources, bos=BOS, eos=EOS, pad=PAD, max_len=cfg.model.max_len + 1,
                          beam=beam or cfg.decode.beam, length_penalty=cfg.decode.length_penalty,
                          batch_size=cfg.decode.batch_size, device=device)
    return [tok.target.decode(ids) for ids in found]


def score_test(model: nn.Module, tok: Tokenizers, test: list[Pair], cfg: TranslateConfig, out: Path | None, *,
               device: Any = "cpu") -> dict[str, Any]:
    """Translate the test split (each distinct source once) and score it with sacreBLEU, one
    reference per pair: ``test_bleu``, ``test_chrf``, their signatures, the decoding time; and each
    source once against all its test translations: ``test_bleu_multiref``, ``test_chrf_multiref``.
    ``out`` gets ``source<TAB>reference<TAB>translation`` per pair."""
    import sacrebleu

    sources = list(dict.fromkeys(s for s, _ in test))
    if cfg.decode.max_test is not None:
        sources = sources[: cfg.decode.max_test]
        keep = set(sources)
        test = [p for p in test if p[0] in keep]
    model.eval()
    started = time.perf_counter()
    hyps = dict(zip(sources, translate(model, tok, sources, cfg, device=device)))
    seconds = time.perf_counter() - started
    hypotheses = [hyps[s] for s, _ in test]
    references = [t for _, t in test]
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    # Tatoeba gives many sources several translations: score each source once against all of them too
    refs: dict[str, list[str]] = {}
    for s, t in test:
        refs.setdefault(s, []).append(t)
    width = max(len(r) for r in refs.values())
    # a missing reference is None (sacreBLEU drops it; its type hints say str only)
    streams = cast(list[list[str]], [[refs[s][k] if k < len(refs[s]) else None for s in sources]
                                     for k in range(width)])
    multi_bleu, multi_chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    mb = multi_bleu.corpus_score([hyps[s] for s in sources], streams)
    mc = multi_chrf.corpus_score([hyps[s] for s in sources], streams)
    if out is not None:
        with open(out, "w", encoding="utf-8") as f:
            f.write("source\treference\ttranslation\n")
            for (s, r), h in zip(test, hypotheses):
                f.write(f"{s}\t{r}\t{h}\n")
    return {"test_bleu": round(b.score, 2), "test_chrf": round(c.score, 2),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
            "test_bleu_multiref": round(mb.score, 2), "test_chrf_multiref": round(mc.score, 2),
            "multiref_bleu_signature": str(multi_bleu.get_signature()),
            "test_pairs": len(test), "test_sources": len(sources), "decode_beam": cfg.decode.beam,
            "decode_seconds": round(seconds, 2),
            "decode_sentences_per_second": round(len(sources) / max(seconds, 1e-9), 2)}


def _print_scores(metrics: dict[str, Any]) -> None:
    print(f"test BLEU {metrics['test_bleu']:.2f}  chrF {metrics['test_chrf']:.2f}  ({metrics['test_pairs']} pairs, "
          f"{metrics['test_sources']} sources, beam {metrics['decode_beam']}, {metrics['decode_seconds']:.1f} s)\n"
          f"  {metrics['bleu_signature']}\n  {metrics['chrf_signature']}", flush=True)


# --------------------------------------------------------------------------- the task contract
def train(cfg: TranslateConfig, inputs: TranslateInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, Any]:
    from attnlab.data.batching import TensorBatches
    from attnlab.engine import fit, seed_everything
    from attnlab.engine.distributed import is_main_process
    from attnlab.files import file_digest

    saved = resumed_meta(run_dir, resume)
    if saved:
        inputs = _recorded_inputs(inputs, saved, "resume")
    path, splits = _load_pairs(cfg, inputs)
    started = time.perf_counter()
    tok = Tokenizers.from_meta(saved["tokenizer"]) if saved else fit_tokenizers(cfg.data, splits.train)
    data = {name: encode_pairs(getattr(splits, name), tok, cfg.model.max_len) for name in ("train", "val")}
    seconds = time.perf_counter() - started
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, tok)
    n_params = sum(p.numel() for p in model.parameters())
    if is_main_process():
        print(f"translate: {path}: {len(splits.train):,} / {len(splits.val):,} / {len(splits.test):,} train / val / "
              f"test pairs; BPE vocabulary {tok.source.vocab_size:,}"
              f"{'' if tok.shared else f' + {tok.target.vocab_size:,}'} ({seconds:.1f} s); {cfg.model.name}, "
              f"{n_params:,} parameters", file=sys.stderr, flush=True)
    bs = cfg.train.batch_size
    train_b = TensorBatches(data["train"], bs, bucket_by="length")
    val_b = TensorBatches(data["val"], max(bs, 128), shuffle=False, bucket_by="length") if splits.val else None
    meta = {"task": "translate", "config": config_to_dict(cfg), "tokenizer": tok.to_meta(),
            "inputs": {"pairs": {"path": str(Path(path).resolve()), "checksum": file_digest(path, "md5")}}}
    metrics: dict[str, Any] = fit(model, TranslationLoss(cfg.loss.label_smoothing), train_b, val_b, cfg.train,
                                  run_dir, meta=meta, resume=resume, progress=progress,
                                  allow_changed_data=allow_changed_data)
    tokens_per_pair = float(data["train"]["length"].float().mean()) - 1  # the target's last piece is not read
    steps, secs = metrics.get("steps", 0), metrics.get("train_seconds", 0.0)
    metrics["train_tokens_per_second"] = round(steps * bs * tokens_per_pair / secs, 1) if secs else 0.0
    metrics["parameters"] = n_params
    metrics["vocab_size"] = tok.source.vocab_size
    if splits.test and is_main_process():
        metrics.update(score_test(model, tok, splits.test, cfg, run_dir / "translations.tsv",
                                  device=next(model.parameters()).device))
        _print_scores(metrics)
    return metrics


def _recorded_inputs(inputs: TranslateInputs, meta: dict[str, Any], what: str) -> TranslateInputs:
    """``inputs``, or, when they name no pairs, the pair file the run was trained on."""
    from dataclasses import replace

    if inputs.data is not None or inputs.data_dir is not None:
        return inputs
    recorded = meta.get("inputs", {}).get("pairs", {}).get("path")
    if not recorded or not Path(recorded).is_file():
        raise AttnlabError(f"the pairs the run was trained on are not at {recorded}; "
                           "pass --data FILE or --data-dir DIR")
    print(f"{what}: the pairs the run was trained on: {recorded}", file=sys.stderr)
    return replace(inputs, data=Path(recorded))


def load_model(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, CPU) and its meta (``meta["tokenizer"]``: :meth:`Tokenizers.to_meta`)."""
    from attnlab.engine import load_checkpoint

    ckpt = load_checkpoint(checkpoint, task="translate")
    cfg = config_from_dict(TranslateConfig, ckpt.meta["config"])
    model = build_model(cfg.model, Tokenizers.from_meta(ckpt.meta["tokenizer"]))
    ckpt.load_into(model)
    return model.eval(), ckpt.meta


def evaluate(checkpoint: str | Path, inputs: TranslateInputs, *, device: str = "auto") -> dict[str, Any]:
    """Test BLEU and chrF of a checkpoint: the pairs it was trained on (or ``inputs``), split as then."""
    from attnlab.data.batching import TensorBatches
    from attnlab.engine import training_device
    from attnlab.engine.evaluate import evaluate as evaluate_batches

    model, meta = load_model(checkpoint)
    cfg = config_from_dict(TranslateConfig, meta["config"])
    inputs = _recorded_inputs(inputs, meta, "eval")
    _, splits = _load_pairs(cfg, inputs)
    if not splits.test:
        raise AttnlabError("the split leaves no test pairs; pass more pairs or raise data.test_fraction")
    dev = training_device(device)
    tok = Tokenizers.from_meta(meta["tokenizer"])
    model.to(dev)
    metrics: dict[str, Any] = {}
    if splits.val:  # the run's own validation numbers, from its best checkpoint
        val = TensorBatches(encode_pairs(splits.val, tok, cfg.model.max_len), max(cfg.train.batch_size, 128),
                            shuffle=False, bucket_by="length")
        metrics.update(evaluate_batches(model, TranslationLoss(cfg.loss.label_smoothing), val))
    metrics.update(score_test(model, tok, splits.test, cfg, inputs.translations, device=dev))
    _print_scores(metrics)
    for timing in ("decode_seconds", "decode_sentences_per_second"):  # the run's own are training's
        metrics.pop(timing)
    return metrics


# --------------------------------------------------------------------------- the explorer's door
class TranslationReader:
    """How a translation model reads a source sentence (:class:`attnlab.attended.Reader`, kind
    ``translation``): :meth:`text` gives the source pieces (the first ``max_len``, as ``attnlab
    translate`` reads them), :meth:`token` a target piece as readable text (a leading space shown
    as ``▁``); ``bos``/``eos``/``pad`` and ``max_len``/``decode`` are what decoding needs."""

    kind = "translation"
    labels: list[str] = []
    image_size = 0
    bos, eos, pad = BOS, EOS, PAD

    def __init__(self, meta: dict[str, Any]) -> None:
        cfg = config_from_dict(TranslateConfig, meta["config"])
        self.tok = Tokenizers.from_meta(meta["tokenizer"])
        self.max_len = cfg.model.max_len
        self.decode = cfg.decode
        self.model_name = cfg.model.name
        self.title = ("encoder-decoder Transformer translation model" if cfg.model.name == "transformer"
                      else f"{cfg.model.cell.upper()} encoder-decoder translation model with attention")

    def text(self, text: str, limit: int) -> Any:
        import torch

        from attnlab.attended import Encoded

        ids = self.tok.source.encode(text)
        keep = min(self.max_len, limit)
        notes = []
        if len(ids) > keep:
            why = f"the limit of {limit}" if keep < self.max_len else f"the model's max_len {self.max_len}"
            notes.append(f"the sentence has {len(ids)} pieces; the model reads the first {keep} ({why}): "
                         f"{self.tok.source.decode(ids[:keep])!r}")
            ids = ids[:keep]
        return Encoded((torch.tensor([ids], dtype=torch.long),), [self.source_token(i) for i in ids], notes)

    def source_token(self, token_id: int) -> str:
        return self.tok.source.piece_text(token_id)

    def token(self, token_id: int) -> str:
        return self.tok.target.piece_text(token_id)

    def detokenize(self, ids: list[int]) -> str:
        return self.tok.target.decode(ids)


def reader(model: nn.Module, meta: dict[str, Any]) -> TranslationReader:
    """How a translation model reads a source sentence (the explorer's door to its ``attend``)."""
    return TranslationReader(meta)
