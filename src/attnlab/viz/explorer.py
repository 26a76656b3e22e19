"""The attention explorer's data: a trained model's attention for one input, ready for the page.

:class:`Explorer` wraps any trained model that has attention (reached through
:func:`attnlab.tasks.load_trained`): DialogueGPT (``gpt``), the sentiment Transformer and
attention classifiers (``text``), the ViT (``vit``) and the toy classifier (``toy``). Its
methods turn an input into a plain dict (:func:`attnlab.viz.explorer_page.render` writes it into
one self-contained HTML page):

* :meth:`Explorer.text`: a text (or the toy task's token ids) -> tokens, every layer's and head's
  weights, and for a classifier the prediction and the attention each token receives;
* :meth:`Explorer.generation`: a prompt continued by ``n`` tokens -> the same, plus each step's
  query row and top-k next-token probabilities;
* :meth:`Explorer.images`: uint8 images -> per image the weights, the class token's attention,
  attention rollout, and the true and predicted labels.

Every weight comes from the model's own ``need_weights`` path (the one tested equal to the fused
kernel). Weights travel to the page as unsigned 16-bit integers (``round(w * 65535)``, base64),
so a masked weight stays exactly 0 and a kept one is within 8e-6 of the model's.
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from attnlab.data.image_folder import EXTENSIONS
from attnlab.data.images import ImageSet, load_images
from attnlab.errors import AttnlabError

__all__ = ["Limits", "Sampling", "Explorer", "ImageInputs", "pack", "unpack", "spread", "read_image",
           "images_from_test_set", "image_files", "image_folder", "empty_images", "data_dir_of", "EXPLORABLE"]

EXPLORABLE = "gpt, text (--model attention or transformer), vit or toy"
QUANT = 65535  # weights are sent as round(w * QUANT) in uint16


@dataclass
class Limits:
    """How much of a large model a page shows (a page stays a few MB)."""

    max_layers: int = 12  # layers shown: evenly spaced, the first and last always among them
    max_heads: int = 12  # heads shown: the first ones
    max_tokens: int = 256  # tokens the model reads (a longer text is cut, and the page says so)
    max_images: int = 16  # images on one ViT page

    def check(self) -> None:
        for name in ("max_layers", "max_heads", "max_tokens", "max_images"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise AttnlabError(f"{flag} must be >= 1, got {getattr(self, name)}")


def spread(n: int, most: int) -> list[int]:
    """At most ``most`` of ``range(n)``, evenly spaced, keeping the first and the last."""
    if n <= most:
        return list(range(n))
    if most == 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def pack(weights: Tensor) -> dict[str, Any]:
    """(..., T_q, T_k) weights in [0, 1] -> ``{"shape", "data"}``: little-endian uint16 in base64."""
    q = torch.round(weights.detach().float().clamp(0, 1) * QUANT).to(torch.int32).cpu().numpy()
    raw = q.astype("<u2").tobytes()
    return {"shape": list(weights.shape), "data": base64.b64encode(raw).decode("ascii")}


def unpack(packed: dict[str, Any]) -> Tensor:
    """The weights :func:`pack` wrote (for tests and tools): float32 of the packed shape."""
    raw = np.frombuffer(base64.b64decode(packed["data"]), dtype="<u2").astype(np.float32) / QUANT
    return torch.from_numpy(raw.copy()).reshape(packed["shape"])


def png_data_uri(image: Tensor) -> str:
    """uint8 (3, H, W) -> a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def read_image(path: Path | str | bytes, size: int, *, name: str = "", max_pixels: int = 4096 * 4096
               ) -> tuple[Tensor, str | None]:
    """An image file (or its bytes) as uint8 (3, size, size), and a note when it had to be resized."""
    from PIL import Image, UnidentifiedImageError

    label = name or str(path if not isinstance(path, bytes) else "the upload")
    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
            if im.size[0] * im.size[1] > max_pixels:
                raise AttnlabError(f"{label} is {im.size[0]}x{im.size[1]} pixels, more than the "
                                   f"{max_pixels:,} accepted; pass a smaller image")
            im = im.convert("RGB")
            note = None
            if im.size != (size, size):
                note = f"{label} is {im.size[0]}x{im.size[1]}; resized to the model's {size}x{size}"
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(im, dtype=np.uint8)  # (H, W, 3)
    except Image.DecompressionBombError:  # Pillow refuses twice its own limit before the size check
        raise AttnlabError(f"{label} is more than the {max_pixels:,} pixels accepted; pass a smaller image") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise AttnlabError(f"cannot read {label} as an image ({exc}); pass a PNG or JPEG file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous(), note


@dataclass
class Sampling:
    """How :meth:`Explorer.generation` picks tokens (:func:`attnlab.models.gpt.iter_generate`)."""

    temperature: float = 0.0  # 0 = greedy
    top_k: int | None = None
    seed: int = 0
    show_top: int = 5  # candidates listed per step

    def describe(self) -> str:
        if self.temperature <= 0:
            return "greedy decoding"
        return f"sampling at temperature {self.temperature:g}, top-k {self.top_k}, seed {self.seed}"


class Explorer:
    """A trained model with attention and what the page needs to know about it."""

    def __init__(self, task: str, model: Any, meta: dict[str, Any], *, checkpoint: str = "",
                 limits: Limits | None = None) -> None:
        self.task, self.model, self.meta = task, model, meta
        self.checkpoint = checkpoint
        self.limits = limits or Limits()
        self.limits.check()
        self.name = meta.get("config", {}).get("model", {}).get("name") if task == "text" else task
        if task == "lstm-lm" or (task == "text" and self.name not in ("attention", "transformer")):
            what = "the LSTM language model" if task == "lstm-lm" else f"the text '{self.name}' model"
            raise AttnlabError(f"{what} ({checkpoint or task}) has no attention to explore; pass a checkpoint of "
                               f"{EXPLORABLE}")
        self.kind = {"gpt": "lm", "text": "classifier", "toy": "classifier", "vit": "vit"}[task]
        self.num_layers, self.num_heads = self._shape()

    @classmethod
    def load(cls, checkpoint: str | Path, *, limits: Limits | None = None) -> Explorer:
        from attnlab.tasks import load_trained

        task, model, meta = load_trained(checkpoint)
        return cls(task, model, meta, checkpoint=str(checkpoint), limits=limits)

    def _shape(self) -> tuple[int, int]:
        """(layers, heads): the single-head attention classifier is one layer of one head."""
        if self.task == "text":
            m = self.meta["config"]["model"]
            return (1, 1) if self.name == "attention" else (int(m["num_layers"]), int(m["num_heads"]))
        c = self.model.config  # GPTConfig, ToyModelConfig, ViTConfig
        return int(c.num_layers), int(c.num_heads)

    # ------------------------------------------------------------------ what is shown
    def selection(self, layer: int | None = None, head: int | None = None) -> tuple[list[int], list[int]]:
        """The layers and heads a page shows; an explicit ``layer``/``head`` is checked and included."""
        for value, n, what in ((layer, self.num_layers, "layer"), (head, self.num_heads, "head")):
            if value is not None and not 0 <= value < n:
                raise AttnlabError(f"--{what} {value} is out of range: this model has {n} {what}{'s' * (n != 1)}, "
                                   f"numbered 0 to {n - 1}")
        layers = spread(self.num_layers, self.limits.max_layers)
        heads = list(range(min(self.num_heads, self.limits.max_heads)))
        if layer is not None and layer not in layers:
            layers = sorted(set(layers[1:]) | {layer})  # keep the count: drop the first spread layer
        if head is not None and head not in heads:
            heads = sorted(set(heads[:-1]) | {head})
        return layers, heads

    def _subset_note(self, layers: list[int], heads: list[int]) -> list[str]:
        notes = []
        if len(layers) < self.num_layers:
            notes.append(f"showing layers {', '.join(map(str, layers))} of {self.num_layers} "
                         f"(--max-layers {self.limits.max_layers})")
        if len(heads) < self.num_heads:
            notes.append(f"showing heads {', '.join(map(str, heads))} of {self.num_heads} "
                         f"(--max-heads {self.limits.max_heads})")
        return notes

    def _base(self, layers: list[int], heads: list[int], layer: int | None, head: int | None,
              notes: list[str]) -> dict[str, Any]:
        return {
            "task": self.task, "model": self.describe(), "checkpoint": self.checkpoint,
            "num_layers": self.num_layers, "num_heads": self.num_heads, "layers": layers, "heads": heads,
            "initial": {"layer": layers.index(layer) if layer is not None else len(layers) - 1,
                        "head": heads.index(head) if head is not None else None},
            "notes": notes + self._subset_note(layers, heads),
        }

    def describe(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        kind = {"gpt": "DialogueGPT language model", "toy": "toy Transformer classifier",
                "vit": "Vision Transformer"}.get(self.task, f"sentiment {self.name} classifier")
        return f"{kind}: {self.num_layers} layer(s), {self.num_heads} head(s), {params:,} parameters"

    @staticmethod
    def _stack(attentions: list[Tensor], layers: list[int], heads: list[int], row: int = 0) -> Tensor:
        """Per-layer (B, H, T, T) -> (len(layers), len(heads), T, T) of batch row ``row``."""
        return torch.stack([attentions[layer][row, heads] for layer in layers]).float()

    # ------------------------------------------------------------------ text models
    def text(self, text: str, *, layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """A text (toy: token ids separated by spaces) -> the page's data."""
        if not text.strip():
            raise AttnlabError("the text is empty; pass a text to explore")
        layers, heads = self.selection(layer, head)
        if self.task == "vit":
            raise AttnlabError("a ViT explores images: pass --images, --image-file or --image-dir")
        if self.task == "gpt":
            return self.generation(text, 0, layer=layer, head=head)
        if self.task == "toy":
            tokens, weights, logits, received, notes = self._toy(text)
            labels = [f"token {c + 1}" for c in range(logits.size(-1))]
        else:
            from attnlab.data.imdb import LABELS

            tokens, weights, logits, received, notes = self._sentiment(text)
            labels = list(self.meta.get("labels", LABELS))
        probs = torch.softmax(logits.float(), -1)[0]
        k = int(probs.argmax())
        data = self._base(layers, heads, layer, head, notes)
        data.update({
            "kind": "classifier", "tokens": tokens, "causal": False,
            "attention": pack(self._stack(weights, layers, heads)),
            "prediction": {"label": labels[k], "probability": float(probs[k]),
                           "probabilities": [[lab, float(p)] for lab, p in zip(labels, probs.tolist())],
                           "received": received.tolist(),
                           "received_what": self._received_what()},
        })
        return data

    def _received_what(self) -> str:
        if self.task == "toy":
            return ("attention each token receives: the mean of its column over every query, last layer, "
                    "heads averaged (the classifier averages the last layer's outputs)")
        what = "the single head" if self.name == "attention" else "the last block, heads averaged"
        return (f"attention each token receives: the mean of its column over every query ({what}), which "
                "is what the pooled output takes from it; what `attnlab explain` shows")

    def _sentiment(self, text: str) -> tuple[list[str], list[Tensor], Tensor, Tensor, list[str]]:
        from attnlab.data.sentiment import encode_texts

        max_len = int(self.meta["config"]["model"]["max_len"])
        limit = min(max_len, self.limits.max_tokens)
        enc, seen = encode_texts([text], self.meta["vocab"], len(text) + 1)  # every token, to count them
        total = len(seen[0])
        notes = []
        if total > limit:
            why = (f"--max-tokens {self.limits.max_tokens}" if limit < max_len
                   else f"the model's max_len {max_len}")
            notes.append(f"the text has {total} tokens; the model reads the first {limit} ({why})")
        ids, lengths = enc["ids"][:, :limit], enc["lengths"].clamp(max=limit)
        with torch.no_grad():
            logits, weights = self.model.attentions(ids, lengths)
        explained = weights[-1].mean(1)  # explain's weights, as forward(need_weights=True) gives them (B, T, T)
        n = int(lengths[0])
        received = explained[0, :n, :n].float().mean(0)  # (T,): the column means, as explain
        return seen[0][:limit], weights, logits, received, notes

    def _toy(self, text: str) -> tuple[list[str], list[Tensor], Tensor, Tensor, list[str]]:
        c = self.model.config
        try:
            ids = [int(t) for t in text.replace(",", " ").split()]
        except ValueError:
            raise AttnlabError(f"the toy model reads token ids 1 to {c.vocab_size} separated by spaces, "
                               f"got {text!r}") from None
        if any(not 1 <= i <= c.vocab_size for i in ids):
            raise AttnlabError(f"the toy model's tokens are 1 to {c.vocab_size}; got {ids}")
        limit = min(c.seq_len, self.limits.max_tokens)
        notes = []
        if len(ids) > limit:
            notes.append(f"{len(ids)} tokens given; the model reads the first {limit}")
            ids = ids[:limit]
        with torch.no_grad():
            logits, weights = self.model(torch.tensor([ids]), need_weights=True)
        received = weights[-1][0].float().mean(0).mean(0)  # last layer (H, T, T) -> (T,)
        return [str(i) for i in ids], weights, logits, received, notes

    # ------------------------------------------------------------------ language models
    def generation(self, prompt: str, num_tokens: int, sampling: Sampling | None = None, *,
                   layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """``prompt`` continued by ``num_tokens`` generated tokens (:func:`iter_generate`), then one
        pass of :meth:`DialogueGPT.attentions` over the whole sequence: causal, so position ``i``'s
        row is what it attended to when it chose token ``i + 1``."""
        from attnlab.data.tokenizer import MyTokenizer
        from attnlab.models.gpt import iter_generate
        from attnlab.tasks.lm import prompt_ids

        if self.task != "gpt":
            raise AttnlabError("--prompt and --generate need a language model (a gpt checkpoint)")
        if num_tokens < 0:
            raise AttnlabError(f"--generate must be >= 0, got {num_tokens}")
        if num_tokens == 0 and not prompt.strip():
            raise AttnlabError("the text is empty; pass a text, or --prompt and --generate N")
        layers, heads = self.selection(layer, head)
        sampling = sampling or Sampling()
        tok = MyTokenizer.from_dict(self.meta["tokenizer"])
        stream = self.meta.get("config", {}).get("data", {}).get("mode") == "stream"
        prefix = prompt_ids(tok, prompt, stream)
        words = tok.tokenize(prompt) if prompt else []
        shown = [tok.vocab[i] for i in prefix]
        if len(words) == len(prefix) - (0 if stream else 1):  # the words the ids came from
            shown = shown[: len(prefix) - len(words)] + [w if i != tok.unk_id else f"{w} (unknown)"
                                                         for w, i in zip(words, prefix[len(prefix) - len(words):])]
        room = min(int(self.model.config.context), self.limits.max_tokens)
        if num_tokens >= room:
            raise AttnlabError(f"--generate {num_tokens} leaves no room for the prompt: the page holds at most "
                               f"{room} tokens (the model's context or --max-tokens)")
        notes = []
        if len(prefix) + num_tokens > room:
            keep = room - num_tokens
            notes.append(f"the prompt has {len(prefix)} tokens; its last {keep} are kept so that it and "
                         f"{num_tokens} new tokens fit in {room}")
            prefix, shown = prefix[-keep:], shown[-keep:]
        new = list(iter_generate(self.model, prefix, num_tokens, temperature=sampling.temperature,
                                 top_k=sampling.top_k, seed=sampling.seed))
        ids = prefix + new
        with torch.no_grad():
            logits, weights = self.model.attentions(torch.tensor([ids]))
        probs = torch.softmax(logits[0].float(), -1)  # (T, V)
        steps = []
        for s, chosen in enumerate(new):
            q = len(prefix) - 1 + s  # the position whose output chose token q + 1
            top = torch.topk(probs[q], min(sampling.show_top, probs.size(-1)))
            steps.append({"query": q, "token": tok.vocab[chosen], "probability": float(probs[q, chosen]),
                          "top": [[tok.vocab[int(i)], float(p)] for p, i in zip(top.values, top.indices)]})
        how = sampling.describe()
        data = self._base(layers, heads, layer, head, notes)
        data.update({
            "kind": "lm", "tokens": shown + [tok.vocab[i] for i in new], "causal": True,
            "attention": pack(self._stack(weights, layers, heads)),
            "generation": {"prompt_length": len(prefix), "steps": steps, "how": how} if new else None,
        })
        return data

    # ------------------------------------------------------------------ images
    def images(self, inputs: ImageInputs, *, layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """Images of the model's size (:func:`images_from_test_set`, :func:`image_files`, :func:`image_folder`)
        -> the page's data."""
        from attnlab.data.augment import normalize
        from attnlab.viz.attention_map import attention_rollout, cls_attention

        if self.task != "vit":
            raise AttnlabError(f"a {self.task} model explores text, not images; pass a TEXT")
        images, names, labels = inputs.images, inputs.names, inputs.labels
        if len(images) == 0:
            raise AttnlabError("no images to explore")
        if len(images) > self.limits.max_images:
            raise AttnlabError(f"{len(images)} images are more than --max-images {self.limits.max_images}; "
                               "pass fewer or raise the limit")
        layers, heads = self.selection(layer, head)
        size = (images.shape[-2], images.shape[-1])
        grid = self.model.grid_for(size)
        with torch.no_grad():
            features, attentions = self.model.forward_features(normalize(images), need_weights=True)
            probs = torch.softmax(self.model.forward_head(features).float(), -1)
        rollout, mean = attention_rollout(attentions), cls_attention(attentions)  # (n, N) each
        classes = list(self.meta.get("classes") or [str(c) for c in range(probs.size(-1))])
        out = []
        for b in range(len(images)):
            k = int(probs[b].argmax())
            truth = labels[b]
            out.append({
                "name": names[b], "png": png_data_uri(images[b]),
                "true": classes[truth] if truth is not None else None, "pred": classes[k],
                "probability": float(probs[b, k]),
                "attention": pack(self._stack(attentions, layers, heads, row=b)),
                "rollout": rollout[b].tolist(), "mean": mean[b].tolist(),
            })
        data = self._base(layers, heads, layer, head, list(inputs.notes))
        data.update({"kind": "vit", "grid": list(grid), "size": list(size), "images": out})
        return data


# ---------------------------------------------------------------------- image inputs
@dataclass
class ImageInputs:
    """Images for :meth:`Explorer.images`: uint8 (n, 3, S, S), names, true labels (or None), notes."""

    images: Tensor
    names: list[str]
    labels: list[int | None]
    notes: list[str]

    def __add__(self, other: ImageInputs) -> ImageInputs:
        return ImageInputs(torch.cat([self.images, other.images]), self.names + other.names,
                           self.labels + other.labels, self.notes + other.notes)


def empty_images(size: int) -> ImageInputs:
    return ImageInputs(torch.zeros(0, 3, size, size, dtype=torch.uint8), [], [], [])


def data_dir_of(meta: dict[str, Any]) -> Path:
    """Where the ViT's training images were (its run records it), else ``./data``."""
    path = meta.get("inputs", {}).get("training images", {}).get("path")
    return Path(path) if path and Path(path).exists() else Path("data")


@functools.lru_cache(maxsize=1)
def _test_set(data_dir: Path, size: int) -> ImageSet:
    """The test split, decoded once: ``--serve`` asks for test images on every request."""
    return load_images(data_dir, size)[1]


def images_from_test_set(data_dir: str | Path, indices: list[int], size: int) -> ImageInputs:
    """Test-set images by index, with their true labels (:func:`attnlab.data.images.load_images`)."""
    test = _test_set(Path(data_dir).resolve(), size)
    n = len(test.labels)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise AttnlabError(f"--images {' '.join(map(str, bad))}: the test set of {data_dir} has {n} images, "
                           f"numbered 0 to {n - 1}")
    if tuple(test.images.shape[-2:]) != (size, size):
        raise AttnlabError(f"the test images of {data_dir} are {test.images.shape[-1]}x{test.images.shape[-2]}, "
                           f"the model's are {size}x{size}; pass the data the model was trained on")
    index = torch.tensor(indices, dtype=torch.long)
    return ImageInputs(test.images[index], [f"test image {i}" for i in indices],
                       [int(test.labels[i]) for i in indices], [])


def image_files(paths: list[Path], size: int, classes: list[str] | None = None) -> ImageInputs:
    """Image files (resized to the model's size, with a note); a file inside a folder named after a
    class (``cat/0001.png``) has that class as its true label."""
    images, names, labels, notes = [], [], [], []
    for path in paths:
        if not Path(path).is_file():
            raise AttnlabError(f"image file {path} does not exist")
        image, note = read_image(path, size)
        images.append(image)
        names.append(Path(path).name)
        parent = Path(path).parent.name
        labels.append(classes.index(parent) if classes and parent in classes else None)
        notes += [note] if note else []
    if not images:
        return empty_images(size)
    return ImageInputs(torch.stack(images), names, labels, notes)


def image_folder(folder: Path, size: int, classes: list[str] | None = None, *, most: int = 16) -> ImageInputs:
    """The .png/.jpg images of ``folder`` and of its class sub-folders (sorted), at most ``most``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AttnlabError(f"--image-dir {folder} is not a folder")
    files = sorted(p for p in [*folder.glob("*"), *folder.glob("*/*")]
                   if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise AttnlabError(f"no .png or .jpg images in {folder} or its sub-folders")
    notes = []
    if len(files) > most:
        notes.append(f"{folder} holds {len(files)} images; the page shows the first {most} (--max-images)")
        files = files[:most]
    found = image_files(files, size, classes)
    return ImageInputs(found.images, found.names, found.labels, notes + found.notes)
