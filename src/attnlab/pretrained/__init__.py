"""Pretrained models in and out (issue 21): Hugging Face / timm / nanoGPT weights in attnlab's
own model classes, and attnlab models written back in Hugging Face layout.

This package sits between ``models`` / ``data`` and ``engine``: it builds models from files, and
the tasks use it. One module per family, each mapping tensors both ways::

    TASK: str                                     # the attnlab task its models belong to
    def build(source: Source) -> nn.Module        # the model holding the source's weights (eval, CPU)
    def export(model, meta, out: Path) -> list[Path]  # optional: config.json + model.safetensors (+ tokenizer)

``FAMILIES`` picks the module from ``config.json``'s ``model_type``; ``EXPORTERS`` from an
attnlab task's name. The task module ``attnlab.tasks.<TASK>`` turns a source into ``(model,
meta)`` with ``load_pretrained(source)`` (its own config, tokenizer and labels in the meta it
reads everywhere else), which :func:`attnlab.tasks.load_trained` calls for ``--checkpoint
DIR|hf:NAME|ckpt.pt``; :func:`family` names an unsupported architecture.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from attnlab.errors import AttnlabError
from attnlab.pretrained.source import HF_PREFIX, Source, is_pretrained, resolve

__all__ = ["FAMILIES", "EXPORTERS", "family", "exporter", "is_pretrained", "resolve",
           "Source", "HF_PREFIX"]

# config.json's model_type -> the module that loads it
FAMILIES: dict[str, str] = {
    "gpt2": "attnlab.pretrained.gpt2",
    "vit": "attnlab.pretrained.vit",
    "bert": "attnlab.pretrained.bert",
    "distilbert": "attnlab.pretrained.bert",
}
# attnlab task -> the module that exports its models in Hugging Face layout
EXPORTERS: dict[str, str] = {
    "gpt": "attnlab.pretrained.gpt2",
    "vit": "attnlab.pretrained.vit",
    "text": "attnlab.pretrained.bert",
}
SUPPORTED = "GPT-2 (GPT2LMHeadModel, GPT2Model, distilgpt2, nanoGPT ckpt.pt), ViT (ViTForImageClassification), BERT"


def family(source: Source) -> ModuleType:
    """The family module for ``source``; an unsupported architecture names the supported ones."""
    name = FAMILIES.get(source.model_type)
    if name is None:
        raise AttnlabError(f"{source.spec} is a {source.architecture!s} (model_type {source.model_type!r}), which "
                           f"attnlab cannot load; supported: {SUPPORTED}")
    return _module(name, source.architecture)


def _module(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise AttnlabError(f"{what} models are not supported in this version of attnlab ({name} is "
                               f"missing); supported: {SUPPORTED}") from exc
        raise


def exporter(task: str) -> ModuleType:
    """The module whose ``export(model, meta, out)`` writes ``task``'s models in Hugging Face layout."""
    name = EXPORTERS.get(task)
    if name is None:
        raise AttnlabError(f"attnlab's {task} models have no Hugging Face counterpart to export to; export a gpt, "
                           f"vit or text (bert) run")
    return _module(name, task)
