"""Where pretrained weights come from: a local directory, a hub name, or nanoGPT's ``ckpt.pt``.

``resolve(spec)`` turns what a person passes to ``--checkpoint`` / ``--init`` into a
:class:`Source`, and ``state_dict(source)`` reads its tensors, safely:

* a directory in Hugging Face layout: ``config.json`` plus ``model.safetensors`` (or a sharded
  ``model.safetensors.index.json``), or ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``;
* ``hf:NAME``: the same files, downloaded (and cached) by ``huggingface_hub``; never
  ``trust_remote_code``: only the config and the tensors are read, never code;
* nanoGPT's ``ckpt.pt`` (or a directory holding one): ``model_args`` and a ``model`` state dict
  whose keys may carry ``torch.compile``'s ``_orig_mod.`` prefix.

Each bad input is one :class:`AttnlabError` naming the problem and the fix. A family module
(``attnlab.pretrained.gpt2``, ``vit``, ``bert``) maps the tensors onto attnlab's own model,
reading them through :func:`take`, which names a missing or mis-shaped tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["Source", "HF_PREFIX", "is_pretrained", "resolve", "state_dict", "take", "strip_prefix",
           "checksum", "source_meta"]

HF_PREFIX = "hf:"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")  # in order of preference
NANOGPT = "ckpt.pt"
# the files of a model directory worth downloading besides the weights (tokenizers, image processing)
EXTRA_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json",
               "special_tokens_map.json", "preprocessor_config.json", "generation_config.json")


@dataclass
class Source:
    """A resolved pretrained model: what was asked for, where its files are, and its config."""

    spec: str  # as the person gave it: "hf:gpt2", a directory, a ckpt.pt
    kind: Literal["hf", "nanogpt"]  # Hugging Face layout, or nanoGPT's checkpoint
    directory: Path  # the folder holding the files (the hub cache's snapshot for hf:NAME)
    weights: Path  # the weights file (model.safetensors, its index, pytorch_model.bin or ckpt.pt)
    config: dict[str, Any] = field(default_factory=dict)  # config.json, or nanoGPT's model_args

    @property
    def model_type(self) -> str:
        """``config.json``'s ``model_type`` (``gpt2``, ``vit``, ``bert``...); nanoGPT's is ``gpt2``, a
        timm checkpoint's its architecture's family (``vit`` for ``vit_base_patch16_224``)."""
        if self.kind == "nanogpt":
            return "gpt2"
        if "model_type" not in self.config and "architecture" in self.config:  # timm
            arch = str(self.config["architecture"])
            return "vit" if arch.startswith("vit_") else f"timm {arch}"
        return str(self.config.get("model_type", ""))

    @property
    def architecture(self) -> str:
        """The first of ``config.json``'s ``architectures`` (``GPT2LMHeadModel``...), timm's
        ``architecture``, else the model type."""
        names = self.config.get("architectures") or []
        if not names and "architecture" in self.config:
            return f"timm {self.config['architecture']}"
        return str(names[0]) if names else self.model_type


def is_pretrained(spec: str | Path) -> bool:
    """Whether ``spec`` names a pretrained source rather than an attnlab run or checkpoint:
    ``hf:NAME``, a ``ckpt.pt``, or a directory with no ``meta.json`` / ``checkpoints/`` that holds
    a model's ``config.json``, weights or ``ckpt.pt``."""
    text = str(spec)
    if text.startswith(HF_PREFIX):
        return True
    path = Path(spec)
    if path.is_file():
        return path.name.endswith(".pt") and not (path.parent / "meta.json").exists()
    if not path.is_dir() or (path / "meta.json").exists() or (path / "checkpoints").is_dir():
        return False
    if (path / NANOGPT).is_file() or any((path / w).is_file() for w in WEIGHTS):
        return True
    return _hf_config(path / "config.json") is not None


def _hf_config(path: Path) -> dict[str, Any] | None:
    """``config.json`` when it is a model's (Hugging Face's ``model_type``, timm's ``architecture``),
    else None (an attnlab run's)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and ("model_type" in config or "architecture" in config) else None


def resolve(spec: str | Path) -> Source:
    """The :class:`Source` of ``spec`` (see the module docstring); downloads ``hf:NAME`` if needed."""
    text = str(spec)
    if text.startswith(HF_PREFIX):
        return _from_hub(text[len(HF_PREFIX):].strip(), text)
    path = Path(spec)
    if path.is_file():
        return _nanogpt(path, text)
    if not path.is_dir():
        raise AttnlabError(f"{text} is neither a directory nor a file; pass a model directory (config.json and "
                           f"model.safetensors), a nanoGPT ckpt.pt, or hf:NAME")
    if not (path / "config.json").is_file():
        if (path / NANOGPT).is_file():
            return _nanogpt(path / NANOGPT, text)
        raise AttnlabError(f"{text} has no config.json; pass a directory in Hugging Face layout (config.json "
                           f"with model.safetensors or pytorch_model.bin, as save_pretrained writes it)")
    return _local(path, text)


def _local(path: Path, spec: str) -> Source:
    config = _hf_config(path / "config.json")
    if config is None:
        raise AttnlabError(f"{path / 'config.json'} is not a model configuration (no model_type); pass a "
                           f"directory written by save_pretrained or downloaded from the hub")
    weights = next((path / w for w in WEIGHTS if (path / w).is_file()), None)
    if weights is None:
        raise AttnlabError(f"{path} has config.json but no weights ({', '.join(WEIGHTS)}); copy the weights "
                           f"file into it")
    return Source(spec=spec, kind="hf", directory=path, weights=weights, config=config)


def _from_hub(name: str, spec: str) -> Source:
    """Download ``name``'s config, weights and tokenizer files through ``huggingface_hub`` (its cache)."""
    if not name:
        raise AttnlabError("hf: needs a model name, e.g. hf:gpt2")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:
        raise AttnlabError(f"{spec} needs huggingface_hub: pip install 'attnlab[pretrained]', or pass a "
                           f"local model directory") from exc
    offline = (f"cannot download {spec} (no network, or the hub is unreachable); on a machine with a network run "
               f"`hf download {name} --local-dir DIR` and pass --checkpoint DIR (a local directory)")
    cached = _cached_snapshot(name)
    if cached is not None:  # downloaded before: no network needed
        return _local(cached, spec)
    if not hub_reachable():  # fail in a moment, not after the hub client's half-minute of retries
        raise AttnlabError(offline)
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings would bury the one line that says what to do
    try:
        config_file = Path(hf_hub_download(name, "config.json"))
        weights: Path | None = None
        for candidate in WEIGHTS:
            try:
                weights = Path(hf_hub_download(name, candidate))
                break
            except EntryNotFoundError:
                continue
        if weights is None:
            raise AttnlabError(f"{spec} has none of {', '.join(WEIGHTS)} on the hub; pass a local directory")
        if weights.name.endswith(".index.json"):
            for shard in sorted(set(_shard_map(weights).values())):
                hf_hub_download(name, shard)
        for extra in EXTRA_FILES:
            try:
                hf_hub_download(name, extra)
            except EntryNotFoundError:
                continue
    except RepositoryNotFoundError as exc:
        raise AttnlabError(f"there is no model {name!r} on the Hugging Face hub (or it is private); check the "
                           f"name, or pass a local directory") from exc
    except AttnlabError:
        raise
    except Exception as exc:  # noqa: BLE001 -- offline, DNS, HTTP, proxy: all say the same thing to a person
        raise AttnlabError(offline) from exc
    return _local(config_file.parent, spec)


def hub_reachable() -> bool:
    """Whether the hub's host name resolves (``HF_ENDPOINT`` or huggingface.co); False offline."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _cached_snapshot(name: str) -> Path | None:
    """The hub cache's folder for ``name`` when it already holds a config and weights, else None."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 -- not cached (or a damaged cache): download instead
        return None
    has_weights = any((folder / w).is_file() for w in WEIGHTS)
    return folder if (folder / "config.json").is_file() and has_weights else None


def _shard_map(index: Path) -> dict[str, str]:
    """``model.safetensors.index.json``'s ``weight_map``: tensor name -> shard file name."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AttnlabError(f"{index} is not a safetensors index (no weight_map); download it again") from exc
    return {str(k): str(v) for k, v in weight_map.items()}


def _nanogpt(path: Path, spec: str) -> Source:
    """nanoGPT's ``ckpt.pt``: its ``model_args`` become the config (the tensors are read later)."""
    ckpt = _torch_load(path)
    args = ckpt.get("model_args") if isinstance(ckpt, dict) else None
    if not isinstance(args, dict) or not isinstance(ckpt.get("model"), dict):
        raise AttnlabError(f"{path} is not a nanoGPT checkpoint (no model_args and model); pass nanoGPT's "
                           f"out/ckpt.pt or a model directory")
    return Source(spec=spec, kind="nanogpt", directory=path.parent, weights=path, config=dict(args))


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary pickles."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as exc:
        raise AttnlabError(f"{path} is not a plain tensor file: a safe load (weights_only) refuses it, since "
                           f"it holds Python objects or is damaged; convert it to model.safetensors where it was "
                           f"made, or download the model again") from exc


def state_dict(source: Source) -> dict[str, Tensor]:
    """The source's tensors by name (CPU), nanoGPT's ``_orig_mod.`` prefixes removed."""
    import torch

    w = source.weights
    if source.kind == "nanogpt":
        found = _torch_load(w)["model"]
        found = strip_prefix(found, "_orig_mod.")
    elif w.name.endswith(".safetensors"):
        found = _safetensors(w)
    elif w.name.endswith(".index.json"):
        found = {}
        for shard in sorted(set(_shard_map(w).values())):
            found.update(_safetensors(w.parent / shard))
    else:
        found = _torch_load(w)
        if isinstance(found, dict) and isinstance(found.get("state_dict"), dict):
            found = found["state_dict"]
    if not isinstance(found, dict) or not all(isinstance(v, torch.Tensor) for v in found.values()):
        raise AttnlabError(f"{w} is not a plain tensor file (it is not a dict of tensors); pass a model "
                           f"directory with model.safetensors")
    return found


def _safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise AttnlabError(f"{path} is not a readable safetensors file ({exc}); download it again") from exc


def strip_prefix(state: dict[str, Tensor], *prefixes: str) -> dict[str, Tensor]:
    """The same tensors with any of ``prefixes`` removed from the start of their names (each once,
    in order): ``transformer.h.0...`` -> ``h.0...``, ``_orig_mod.x`` -> ``x``."""
    out = {}
    for name, value in state.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out


def take(state: dict[str, Tensor], name: str, shape: tuple[int, ...], source: Source) -> Tensor:
    """``state[name]`` checked against the ``shape`` the config implies: a missing tensor or one of
    another shape is one error that names it (float32, contiguous)."""
    import torch

    if name not in state:
        raise AttnlabError(f"{source.spec}: tensor '{name}' is missing from {source.weights.name}; the weights do not "
                           f"belong to a {source.architecture} of this config.json")
    t = state[name]
    if tuple(t.shape) != tuple(shape):
        raise AttnlabError(f"{source.spec}: tensor '{name}' has shape {tuple(t.shape)}, but config.json implies "
                           f"{tuple(shape)}; the weights and config.json are from different models")
    return t.to(torch.float32).contiguous()


def checksum(source: Source) -> str:
    """``sha256:<hex>`` of the weights file (for a sharded index: of the index), as a run records it."""
    from attnlab.files import file_digest

    return "sha256:" + file_digest(source.weights, "sha256")


def source_meta(source: Source, *, with_checksum: bool = False) -> dict[str, Any]:
    """What a run's or a loaded model's ``meta["pretrained"]`` holds about where the weights came from."""
    meta: dict[str, Any] = {"source": source.spec, "kind": source.kind, "path": str(source.weights.resolve()),
                            "architecture": source.architecture, "model_type": source.model_type}
    if with_checksum:
        meta["checksum"] = checksum(source)
    return meta
