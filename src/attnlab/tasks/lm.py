"""The glue the two language-model tasks share (``gpt`` and its LSTM baseline ``lstm-lm``).

Same data, split, tokenizer, vocabulary, context windows, loss and sampling for both, so that
their results compare the architectures and nothing else. Two ways to read a text
(``data.mode``): ``dialogue``, one example per speaker turn (the course's default), and
``stream``, the whole text as one token stream with random windows (nanoGPT's way, for any
corpus); and three tokenizers (``data.tokenizer``): words, characters, or a byte-level BPE of
``data.bpe_vocab_size`` ids fitted on the training part (:mod:`attnlab.data.bpe_lm`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from attnlab.config import Count, Fraction, Range, Seed, config_from_dict, config_to_dict
from attnlab.errors import AttnlabError
from attnlab.tasks import resumed_meta

if TYPE_CHECKING:  # the work imports torch, tokenizers and data pipelines when it starts (fast --help)
    from torch import nn

    from attnlab.data.batching import Batches
    from attnlab.data.tokenizer import MyTokenizer
    from attnlab.models.configs import SampleConfig


@dataclass
class LMDataConfig:
    mode: Literal["dialogue", "stream"] = "dialogue"  # dialogue: one example per speaker turn (windowed);
    # stream: the text as one token stream, the first 90 % trains, random windows of model.context
    tokenizer: Literal["word", "char", "bpe", "pretrained"] = "word"  # word: nltk.word_tokenize words; char:
    # characters; bpe: a byte-level BPE fitted on the training part; pretrained: the --init model's own
    # (GPT-2's BPE), set by the run, never chosen by hand
    bpe_vocab_size: Annotated[int, Range(ge=259, le=2**20)] = 2000  # bpe: ids in all (256 bytes, 3 specials, merges)
    val_fraction: Fraction = 0.1  # share held out for validation (turns, or the end of the stream)
    split_seed: Seed = 0  # dialogue: seed of the train/validation split of the turns
    min_freq: Count = 2  # words: keep words seen at least this often in the training part (others: <unk>)
    max_vocab: Annotated[int, Range(ge=4, le=2**24)] | None = None  # at most this many ids, specials
    # included (None: no cap)
    lowercase: bool = True  # lower-case before tokenizing (halves a word vocabulary)
    max_val_tokens: Count | None = None  # stream: validate on the first this-many validation tokens (None: all)
    window: Count | None = None  # tokens per training/validation window (None: model.context); a fine-tuned
    # GPT-2 keeps its 1,024 positions but trains on shorter windows


@dataclass
class LMInputs:
    data: Path | None = field(default=None, metadata={"help": (
        "plain UTF-8 text (default: the bundled Tiny Shakespeare). With data.mode=dialogue its "
        "blank-line-separated blocks are the examples (a text without blank lines: one example per "
        "line), split into windows of model.context tokens; with data.mode=stream it is one token "
        "stream, the first 90 %% for training")})


# Step budgets, so that the same command trains the same model on any machine. "default" is
# README command 1; "cpu-20min" compares DialogueGPT with the LSTM baseline at equal wall time:
# each model's step count was chosen from its measured steps per second (README, language model).
GPT_STEPS = {"default": 1000, "cpu-20min": 5500}
SLOW_STEP_FLOPS = 2e12  # a training step above this warns up front (tens of seconds or more on a laptop CPU)
LSTM_STEPS = {"default": 750, "cpu-20min": 5200}


def print_sample(model: nn.Module, tok: MyTokenizer, s: SampleConfig, *, stream: bool, seed: int,
                 label: str = "sample") -> str:
    """Generate ``s.num_tokens`` tokens after ``s.prompt`` and print them; returns the text.

    A training run's samples are a few dozen words: under ``ATTNLAB_DECODE=auto`` they decode in
    Python, since building the C++ step (about 20 s, once) would not pay here and would land inside
    the run's time (the same words either way). A value set by the user is followed."""
    from attnlab.data.tokenizer import prompt_ids
    from attnlab.models.configs import decode_backend
    from attnlab.models.gpt import generate

    prefix = prompt_ids(tok, s.prompt, stream)
    choice = decode_backend()
    decode = "python" if choice == "auto" else choice
    ids = generate(model, prefix, s.num_tokens, temperature=s.temperature, top_k=s.top_k, seed=seed, decode=decode)
    text = tok.decode(prefix + ids)
    print(f"{label}: {text}", flush=True)
    return text


def window_length(cfg: Any) -> int:
    """Tokens per training and validation window: ``data.window``, at most ``model.context``."""
    return min(cfg.data.window or cfg.model.context, cfg.model.context)


def lm_data(cfg: Any, inputs: LMInputs, tok: MyTokenizer | None = None) -> tuple[MyTokenizer, Batches, Batches, str]:
    """``(tokenizer, train batches, validation batches, description)`` of ``inputs.data`` as
    ``cfg.data`` reads it. A saved ``tok`` (evaluating a checkpoint) is used, never rebuilt."""
    from attnlab.data.dialogue import lm_batches, prepare_lm_data
    from attnlab.data.shakespeare import load_text
    from attnlab.data.stream import WindowBatches, prepare_stream

    d, bs = cfg.data, cfg.train.batch_size
    context = window_length(cfg)
    if d.tokenizer == "pretrained" and (tok is None or d.mode != "stream"):
        raise AttnlabError("data.tokenizer=pretrained is the tokenizer of a pretrained model, read as one stream: "
                           "train with --init DIR|hf:NAME and data.mode=stream, or choose data.tokenizer=word or char")
    split: Literal["word", "char", "bpe"] = d.tokenizer if d.tokenizer != "pretrained" else "word"  # (tok as it is)
    if d.mode == "stream":
        s = prepare_stream(inputs.data, tokenizer=split, val_fraction=d.val_fraction, min_freq=d.min_freq,
                           max_vocab=d.max_vocab, lowercase=d.lowercase, tok=tok, bpe_vocab_size=d.bpe_vocab_size)
        val = s.val[: d.max_val_tokens] if d.max_val_tokens else s.val
        return (s.tokenizer, WindowBatches(s.train, context, bs), WindowBatches(val, context, bs, shuffle=False),
                f"{len(s.train):,} training / {len(val):,} validation tokens")
    data = prepare_lm_data(load_text(inputs.data), context=context, val_fraction=d.val_fraction,
                           split_seed=d.split_seed, min_freq=d.min_freq, max_vocab=d.max_vocab,
                           lowercase=d.lowercase, kind=split, tokenizer=tok, bpe_vocab_size=d.bpe_vocab_size)
    return (data.tokenizer, lm_batches(data.train, bs), lm_batches(data.val, bs, shuffle=False),
            f"{len(data.train)} training / {len(data.val)} validation examples, {data.train.num_targets():,} / "
            f"{data.val.num_targets():,} target tokens")


def train_lm(task: str, cfg: Any, inputs: LMInputs, run_dir: Path, build: Callable[[Any], nn.Module], *,
             resume: bool | Path = False, progress: bool | None = None,
             allow_changed_data: bool = False) -> dict[str, float]:
    """Prepare the data, seed, build the model with ``build(cfg.model)``, train through the engine.

    Resuming, the tokenizer is the checkpoint's (a changed text is encoded with the old
    vocabulary, and the engine refuses it unless ``allow_changed_data``)."""
    from attnlab.data.shakespeare import bundled_path
    from attnlab.data.stream import file_md5
    from attnlab.data.tokenizer import MyTokenizer
    from attnlab.engine import fit, seed_everything, training_device
    from attnlab.engine.distributed import is_main_process
    from attnlab.losses import DialogueLoss
    from attnlab.memory import count_parameters, gib, require, training_bytes

    saved = resumed_meta(run_dir, resume)
    init = getattr(inputs, "init", None)
    pretrained, start, origin = None, None, saved.get("pretrained") if saved else None
    if init and not saved:  # a new run from pretrained weights: their architecture and tokenizer
        pretrained, start, origin = init_from(task, init, cfg)
    tok, train_batches, val_batches, what = lm_data(cfg, inputs, MyTokenizer.from_dict(saved["tokenizer"])
                                                    if saved else pretrained)
    if start is None:
        cfg.model.vocab_size = len(tok)
    m, bs = cfg.model, cfg.train.batch_size
    T = window_length(cfg)  # positions per training window
    width = getattr(m, "hidden", m.dim)
    activations = 4 * bs * T * (3 * len(tok) + m.num_layers * 12 * max(width, getattr(m, "mlp_dim", 0)))
    needed = training_bytes(lambda: build(m)) + activations
    device = training_device(cfg.train.device)
    require(needed, device=device,
            what=f"training this {task} (model.dim={m.dim}, model.context={m.context:,}, vocabulary {len(tok):,}, "
                 f"train.batch_size={bs})", fix="lower model.context, model.dim or train.batch_size")
    seed_everything(cfg.train.seed)
    model = build(cfg.model)
    if start is not None:
        model.load_state_dict(start)
        del start
    model.never_generated = tok.never_generated  # type: ignore[assignment]  # (an nn.Module to mypy)
    n_params = count_parameters(model)
    # FLOPs of one step, as nanoGPT counts them: 6 per parameter and token, plus attention's T^2 term
    step_flops = bs * T * (6 * n_params + (12 * m.num_layers * m.dim * T if hasattr(m, "num_heads") else 0))
    if step_flops > SLOW_STEP_FLOPS and is_main_process():
        print(f"warning: one training step of this {task} is about {step_flops / 1e12:,.1f} TFLOP and needs about "
              f"{gib(needed)} (model.context={m.context:,}, train.batch_size={bs}): expect minutes per step on a CPU "
              "before the first progress line; lower model.context or train.batch_size for a quicker run",
              file=sys.stderr, flush=True)
    source = str(inputs.data) if inputs.data else "bundled Tiny Shakespeare"
    if is_main_process():
        shown = inputs.data or f"bundled Tiny Shakespeare ({bundled_path()})"
        pieces = {"pretrained": "the pretrained model's tokens", "bpe": "BPE pieces"}.get(
            cfg.data.tokenizer, f"{cfg.data.tokenizer}s")
        print(f"{task}: {shown} as {cfg.data.mode} of {pieces}: {what}, vocabulary {len(tok):,}, "
              f"{n_params:,} parameters", file=sys.stderr, flush=True)
    md5 = file_md5(inputs.data)
    meta = {"task": task, "config": config_to_dict(cfg), "tokenizer": tok.to_dict(),
            "inputs": {"text": {"path": source, "checksum": md5}}}
    if origin:
        meta["pretrained"] = origin  # where the starting weights came from, with their checksum
    stream = cfg.data.mode == "stream"

    def on_eval(m: nn.Module, metrics: dict[str, float]) -> None:
        step = int(metrics["step"])
        print_sample(m, tok, cfg.sample, stream=stream, seed=cfg.sample.seed + step, label=f"sample at step {step}")

    if hasattr(m, "num_heads"):  # DialogueGPT: its attention kernel is built, where it serves, before the clock starts
        from attnlab.attention_kernel import build_if_served

        build_if_served(T, device)
    metrics = fit(model, DialogueLoss(), train_batches, val_batches, cfg.train, run_dir, meta=meta, resume=resume,
                  progress=progress, perplexity=True, on_eval=on_eval, allow_changed_data=allow_changed_data)
    if is_main_process():
        print_sample(model, tok, cfg.sample, stream=stream, seed=cfg.sample.seed, label="sample (best checkpoint)")
    metrics["vocab_size"] = len(tok)
    metrics["parameters"] = n_params
    return metrics


def init_from(task: str, spec: str, cfg: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``(tokenizer, state dict, meta["pretrained"])`` of ``--init SPEC``: ``cfg.model`` takes the
    pretrained architecture (its dropout stays the recipe's) and ``cfg.data`` its tokenizer, read as one stream."""
    import dataclasses

    from attnlab.data.pretrained_tokenizer import PretrainedTokenizer
    from attnlab.pretrained import family
    from attnlab.pretrained.source import resolve, source_meta

    source = resolve(spec)
    module = family(source)
    if module.TASK != task:
        raise AttnlabError(f"--init {spec} is a {source.architecture}, not a {task} model; pass a GPT-2 directory, "
                           f"hf:NAME or nanoGPT's ckpt.pt")
    model = module.build(source)
    tok = PretrainedTokenizer.from_directory(source.directory)
    keep = {"dropout": cfg.model.dropout, "attn_dropout": cfg.model.attn_dropout}
    cfg.model = dataclasses.replace(model.config, **keep)
    if (cfg.data.mode, cfg.data.tokenizer) != ("stream", "pretrained"):
        print(f"note: --init reads the text with {spec}'s own tokenizer as one stream (data.mode=stream, "
              f"data.tokenizer=pretrained)", file=sys.stderr)
        cfg.data.mode, cfg.data.tokenizer, cfg.data.lowercase = "stream", "pretrained", False
    print(f"{task}: starting from {source.architecture} weights ({spec})", file=sys.stderr, flush=True)
    return tok, model.state_dict(), source_meta(source, with_checksum=True)


def load_lm(task: str, config_cls: type, checkpoint: str | Path,
            build: Callable[[Any], nn.Module]) -> tuple[Any, dict[str, Any]]:
    """The trained model of a ``task`` checkpoint (eval mode), rebuilt from the run's own config
    (``meta["config"]``), and its meta (with the tokenizer)."""
    from attnlab.data.tokenizer import MyTokenizer
    from attnlab.engine import load_checkpoint

    ckpt = load_checkpoint(checkpoint, task=task)
    tok = MyTokenizer.from_dict(ckpt.meta.get("tokenizer"))
    if not isinstance(ckpt.meta.get("config"), dict):
        raise AttnlabError(f"checkpoint {ckpt.path} has no config in meta.json; it may be corrupted or from an "
                           "older attnlab (retrain it)")
    model: Any = build(config_from_dict(config_cls, ckpt.meta["config"]).model)
    if model.config.vocab_size != len(tok):
        raise AttnlabError(f"checkpoint {ckpt.path}: the model has {model.config.vocab_size} ids but the "
                           f"tokenizer {len(tok)}; meta.json does not match the weights")
    ckpt.load_into(model)
    model.never_generated = tok.never_generated
    return model.eval(), ckpt.meta


def evaluate_lm(task: str, config_cls: type, checkpoint: str | Path, inputs: LMInputs,
                build: Callable[[Any], nn.Module], device: str = "auto") -> dict[str, float]:
    """Validation loss and perplexity of a checkpoint on the validation part of ``inputs.data``,
    split and tokenized as the checkpoint was trained."""
    from attnlab.data.stream import file_md5
    from attnlab.data.tokenizer import MyTokenizer
    from attnlab.engine import training_device
    from attnlab.engine.evaluate import evaluate as evaluate_batches
    from attnlab.losses import DialogueLoss
    from attnlab.pretrained.source import is_pretrained
    from attnlab.tasks import load_trained

    if is_pretrained(checkpoint):  # a GPT-2 directory, hf:NAME, ckpt.pt
        _, model, meta = load_trained(checkpoint, tasks=(task,), what=f"a {task} model")
    else:
        model, meta = load_lm(task, config_cls, checkpoint, build)
    cfg: Any = config_from_dict(config_cls, meta["config"])
    if "inputs" in meta and file_md5(inputs.data) != meta["inputs"].get("text", {}).get("checksum"):
        print("note: this text differs from the one the checkpoint was trained on; the validation "
              "part is drawn from it anyway", file=sys.stderr)
    _, _, val_batches, _ = lm_data(cfg, inputs, tok=MyTokenizer.from_dict(meta["tokenizer"]))
    return evaluate_batches(model.to(training_device(device)), DialogueLoss(), val_batches, perplexity=True)


class LMReader:
    """How a trained language model reads a prompt (:class:`attnlab.attended.Reader`, kind ``lm``):
    the run's own tokenizer, and the start token a dialogue model begins every turn with."""

    kind = "lm"
    labels: list[str] = []
    image_size = 0

    def __init__(self, meta: dict[str, Any], title: str) -> None:
        from attnlab.data.tokenizer import MyTokenizer

        self.tok = MyTokenizer.from_dict(meta["tokenizer"])
        self.stream = meta.get("config", {}).get("data", {}).get("mode") == "stream"
        self.title = title

    def text(self, text: str, limit: int) -> Any:
        """The prompt's ids (its last ``limit``), shown as words; an unknown word says so."""
        import torch

        from attnlab.attended import Encoded
        from attnlab.data.tokenizer import prompt_ids

        ids = prompt_ids(self.tok, text, self.stream)
        bpe = self.tok.kind in ("pretrained", "bpe")  # (its vocab is readable; its raw pieces are not)
        words = self.tok.tokenize(text) if text and not bpe else []
        shown = [self.tok.vocab[i] for i in ids]
        if words and len(words) == len(ids) - (0 if self.stream else 1):  # the words the ids came from
            start = len(ids) - len(words)
            shown = shown[:start] + [w if i != self.tok.unk_id else f"{w} (unknown)"
                                     for w, i in zip(words, ids[start:])]
        notes = []
        if len(ids) > limit:
            notes.append(f"the prompt has {len(ids)} tokens; its last {limit} are kept")
            ids, shown = ids[-limit:], shown[-limit:]
        return Encoded((torch.tensor([ids]),), shown, notes)

    def token(self, token_id: int) -> str:
        return self.tok.vocab[token_id]
