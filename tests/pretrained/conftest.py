"""Fixtures of the pretrained-model tests: real architectures with random weights, saved locally
(``save_pretrained``) as Hugging Face directories, and a byte-level BPE trained here. No network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SHAKESPEARE = Path(__file__).resolve().parents[2] / "src" / "attnlab" / "data" / "tinyshakespeare.txt"
VOCAB = 400  # the test BPE's size (and the test GPT-2s' vocabulary)


def randomize(model: torch.nn.Module, *, seed: int, std: float = 0.1) -> torch.nn.Module:
    """Every weight drawn N(0, std) (norm scales around 1): logits far from HF's near-zero
    initialisation, so that an equality test compares numbers that differ when the mapping is wrong."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g) * std
            p.copy_(1 + noise if ("ln" in name or "norm" in name) and name.endswith("weight") else noise)
    return model


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory) -> Path:
    """vocab.json + merges.txt of a byte-level BPE (VOCAB ids, <|endoftext|> first) trained on the start of Tiny
    Shakespeare, and the tokenizer.json transformers writes for them."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("bpe")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([SHAKESPEARE.read_text(encoding="utf-8")[:200_000]], vocab_size=VOCAB, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(folder))
    transformers.GPT2TokenizerFast.from_pretrained(str(folder)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory, bpe_dir) -> Callable[..., Path]:
    """``gpt2_dir(seed=0, **GPT2Config fields)``: a saved random GPT2LMHeadModel with the test BPE."""
    made: dict[str, Path] = {}

    def make(seed: int = 0, **fields) -> Path:
        key = json.dumps([seed, fields], sort_keys=True)
        if key not in made:
            folder = tmp_path_factory.mktemp("gpt2")
            cfg = transformers.GPT2Config(**{"vocab_size": VOCAB, "n_positions": 64, "n_embd": 32, "n_layer": 2,
                                             "n_head": 4, "bos_token_id": 0, "eos_token_id": 0, **fields})
            torch.manual_seed(seed)
            model = randomize(transformers.GPT2LMHeadModel(cfg), seed=seed)
            model.save_pretrained(str(folder))
            for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
                (folder / name).write_bytes((bpe_dir / name).read_bytes())
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory) -> Callable[..., Path]:
    """``vit_dir(seed=0, **ViTConfig fields)``: a saved random ViTForImageClassification."""
    made: dict[str, Path] = {}

    def make(seed: int = 0, **fields) -> Path:
        key = json.dumps([seed, fields], sort_keys=True)
        if key not in made:
            folder = tmp_path_factory.mktemp("vit")
            cfg = transformers.ViTConfig(**{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                            "intermediate_size": 64, "image_size": 32, "patch_size": 8,
                                            "num_labels": 5, **fields})
            torch.manual_seed(seed)
            randomize(transformers.ViTForImageClassification(cfg), seed=seed).save_pretrained(str(folder))
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="session")
def hf() -> SimpleNamespace:
    """The references: ``hf.gpt2(folder)`` / ``hf.vit(folder)`` load a directory with transformers' own classes;
    ``hf.transformers``, ``hf.vocab`` (the test BPE's size) and ``hf.text`` (Tiny Shakespeare's path)."""
    return SimpleNamespace(
        gpt2=lambda folder: transformers.GPT2LMHeadModel.from_pretrained(str(folder)).eval(),
        vit=lambda folder: transformers.ViTForImageClassification.from_pretrained(str(folder)).eval(),
        transformers=transformers, vocab=VOCAB, text=SHAKESPEARE, randomize=randomize)
