"""The glue the two language-model tasks share (``gpt`` and its LSTM baseline ``lstm-lm``).

Same data, split, tokenizer, vocabulary, context windows, loss and sampling for both, so that
their results compare the architectures and nothing else.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from attnlab.config import config_to_dict
from attnlab.data.dialogue import lm_batches, prepare_lm_data
from attnlab.data.shakespeare import load_text
from attnlab.data.tokenizer import MyTokenizer
from attnlab.engine import evaluate as evaluate_batches
from attnlab.engine import fit, load_checkpoint, seed_everything, training_device
from attnlab.errors import AttnlabError
from attnlab.losses import DialogueLoss
from attnlab.models.gpt import generate


@dataclass
class LMDataConfig:
    val_fraction: float = 0.1  # share of the speaker turns held out for validation
    split_seed: int = 0  # seed of the train/validation split (fixed: same split for every model)
    min_freq: int = 2  # keep words seen at least this often in the training turns (others: <unk>)
    max_vocab: int | None = None  # at most this many ids, specials included (None: no cap)
    lowercase: bool = True  # lower-case before tokenizing (halves the vocabulary)


@dataclass
class SampleConfig:
    prompt: str = ""  # text the sample continues ("" = from the start token)
    num_tokens: int = 50  # words per sample
    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 40  # sample among the k most likely words (None: all)
    seed: int = 0  # sampling seed, so samples are reproducible


@dataclass
class LMInputs:
    data: Path | None = field(default=None, metadata={"help": (
        "plain UTF-8 text whose blank-line-separated blocks are the examples (a text without blank "
        "lines: one example per line; default: the bundled Tiny Shakespeare); an example longer than "
        "model.context words is split into windows")})


# Wall-clock training budgets shared by DialogueGPT and the LSTM baseline, so that the same
# preset name compares the two architectures at equal training time.
BUDGET_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"train.time_limit": 180.0},  # README command 1: about 3 minutes on 2 CPU cores
    "cpu-20min": {"train.time_limit": 1200.0},  # about 20 minutes on 2 CPU cores
}


def print_sample(model: nn.Module, tok: MyTokenizer, s: SampleConfig, label: str = "sample") -> str:
    """Generate ``s.num_tokens`` words after ``s.prompt`` and print them; returns the text."""
    prefix = tok.encode(s.prompt)
    ids = generate(model, prefix, s.num_tokens, temperature=s.temperature, top_k=s.top_k, seed=s.seed)
    text = tok.decode(prefix + ids)
    print(f"{label}: {text}", flush=True)
    return text


def _text_md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def train_lm(task: str, cfg: Any, inputs: LMInputs, run_dir: Path, build: Callable[[Any], nn.Module], *,
             resume: bool = False, progress: bool | None = None) -> dict[str, float]:
    """Prepare the data, seed, build the model with ``build(cfg.model)``, train through the engine."""
    text = load_text(inputs.data)
    d = cfg.data
    data = prepare_lm_data(text, context=cfg.model.context, val_fraction=d.val_fraction, split_seed=d.split_seed,
                           min_freq=d.min_freq, max_vocab=d.max_vocab, lowercase=d.lowercase)
    cfg.model.vocab_size = len(data.tokenizer)
    seed_everything(cfg.train.seed)
    model = build(cfg.model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{task}: {len(data.train)} training / {len(data.val)} validation examples, "
          f"{data.train.num_targets():,} / {data.val.num_targets():,} target words, vocabulary "
          f"{len(data.tokenizer):,}, {n_params:,} parameters", file=sys.stderr, flush=True)
    meta = {"task": task, "model": asdict(cfg.model), "config": config_to_dict(cfg),
            "tokenizer": data.tokenizer.to_dict(),
            "data": {"source": str(inputs.data) if inputs.data else "bundled tinyshakespeare", "md5": _text_md5(text)}}

    def on_eval(m: nn.Module, metrics: dict[str, float]) -> None:
        print_sample(m, data.tokenizer, cfg.sample, label=f"sample at step {int(metrics['step'])}")

    bs = cfg.train.batch_size
    metrics = fit(model, DialogueLoss(), lm_batches(data.train, bs), lm_batches(data.val, bs, shuffle=False),
                  cfg.train, run_dir, meta=meta, resume=resume, progress=progress, perplexity=True, on_eval=on_eval)
    print_sample(model, data.tokenizer, cfg.sample, label="sample (best checkpoint)")
    metrics["vocab_size"] = len(data.tokenizer)
    metrics["parameters"] = n_params
    return metrics


def load_lm(task: str, checkpoint: str | Path,
            build: Callable[[dict[str, Any]], nn.Module]) -> tuple[Any, dict[str, Any]]:
    """The trained model of a ``task`` checkpoint (eval mode) and its meta (with the tokenizer)."""
    ckpt = load_checkpoint(checkpoint, task=task)
    tok = MyTokenizer.from_dict(ckpt.meta.get("tokenizer"))
    model: Any
    try:
        model = build(ckpt.meta["model"])
    except (KeyError, TypeError) as exc:
        raise AttnlabError(f"checkpoint {ckpt.path} has no valid model config in meta.json ({exc}); "
                           "it may be corrupted or from another attnlab version") from None
    if model.config.vocab_size != len(tok):
        raise AttnlabError(f"checkpoint {ckpt.path}: the model has {model.config.vocab_size} ids but the "
                           f"tokenizer {len(tok)}; meta.json does not match the weights")
    ckpt.load_into(model)
    return model.eval(), ckpt.meta


def evaluate_lm(task: str, checkpoint: str | Path, inputs: LMInputs, build: Callable[[dict[str, Any]], nn.Module],
                device: str = "auto") -> dict[str, float]:
    """Validation loss and perplexity of a checkpoint on the validation turns of ``inputs.data``."""
    model, meta = load_lm(task, checkpoint, build)
    d = meta.get("config", {}).get("data", {})
    text = load_text(inputs.data)
    if _text_md5(text) != meta.get("data", {}).get("md5"):
        print("note: this text differs from the one the checkpoint was trained on; the validation "
              "split is drawn from it anyway", file=sys.stderr)
    data = prepare_lm_data(text, context=model.config.context, val_fraction=d.get("val_fraction", 0.1),
                           split_seed=d.get("split_seed", 0), tokenizer=MyTokenizer.from_dict(meta["tokenizer"]))
    metrics = evaluate_batches(model.to(training_device(device)), DialogueLoss(),
                               lm_batches(data.val, 32, shuffle=False), perplexity=True)
    metrics["val_words"] = data.val.num_targets()
    return metrics
