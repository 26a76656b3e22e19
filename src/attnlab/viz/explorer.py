"""The attention explorer's data: a trained model's attention for one input, ready for the page.

:class:`Explorer` wraps any trained model that answers ``attend`` (:mod:`attnlab.attended`),
reached through :func:`attnlab.tasks.load_trained` with its task's reader
(:func:`attnlab.tasks.load_reader`), which turns a person's text or images into the model's
inputs. It never asks which task a model came from: what it shows follows the reader's kind
(a language model, a classifier, an image model). Its methods turn an input into a plain dict
(:func:`attnlab.viz.explorer_page.render` writes it into one self-contained HTML page):

* :meth:`Explorer.text`: a text (or the toy task's token ids) -> tokens, every layer's and head's
  weights, and for a classifier the prediction and the attention each token receives;
* :meth:`Explorer.generation`: a prompt continued by ``n`` tokens -> the same, plus each step's
  query row and top-k next-token probabilities;
* :meth:`Explorer.compare`: two texts' data (a ``Request`` with ``compare``) as one page's, B beside A with
  the same layers and heads, aligned position by position up to the shorter (the page draws A - B);
* :meth:`Explorer.images`: uint8 images -> per image the weights, the class token's attention,
  attention rollout, and the true and predicted labels;
* :meth:`Explorer.translation`: a source sentence translated (greedy or beam search) -> the three
  attentions of an encoder-decoder (``views``: the decoder's cross-attention, target x source, the
  encoder's and the decoder's self-attention), and each decoding step's chosen piece and candidates.

A BERT classifier reads a sentence pair (``Request.pair``): ``[CLS] A [SEP] B [SEP]``, and the
page gets each token's ``segments`` (its token type) for the A -> B, B -> A filters.

Every weight comes from the model's ``attend``, its own ``need_weights`` path (the one tested equal to the fused
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

from attnlab.attended import Attended
from attnlab.data.image_folder import EXTENSIONS
from attnlab.data.images import ImageSet, load_images
from attnlab.errors import AttnlabError
from attnlab.memory import count_parameters

__all__ = ["Limits", "Sampling", "Request", "Explorer", "ImageInputs", "pack", "unpack", "spread", "read_image",
           "images_from_test_set", "image_files", "image_folder", "empty_images", "data_dir_of", "attention_shape",
           "window_starts", "PAGE_TOKENS"]

QUANT = 65535  # weights are sent as round(w * QUANT) in uint16
PAGE_TOKENS = 1024  # a language model's page (prompt and generated tokens) holds at most this many by default
RECEIVED_WHAT = ("attention each token receives: the mean of its column over every query, last layer, heads "
                 "averaged, which is what a classifier that averages its tokens takes from it; what "
                 "`attnlab explain` shows")


@dataclass
class Limits:
    """How much of a large model a page shows (a page stays a few MB)."""

    max_layers: int = 12  # layers shown: evenly spaced, the first and last always among them
    max_heads: int = 12  # heads shown: the first ones
    # tokens the model reads (a longer text is cut, and the page says so); None: the model's own limit
    # (its max_len or context), so the page reads a review exactly as `attnlab predict` does
    max_tokens: int | None = None
    max_images: int = 16  # images on one ViT page

    def check(self) -> None:
        for name in ("max_layers", "max_heads", "max_tokens", "max_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise AttnlabError(f"{flag} must be >= 1, got {getattr(self, name)}")


def window_starts(prompt: int, total: int, context: int) -> list[int]:
    """Per position ``q`` of a prompt of ``prompt`` tokens continued to ``total``, the first position of the
    window it attended over when it chose token ``q + 1``, as :func:`attnlab.models.gpt.iter_generate` slides
    it: the prompt's last ``context`` tokens first, and when the sequence outgrows the context, its last
    ``context // 2``. All 0 while the sequence fits the context."""
    start = max(0, prompt - context)
    starts = [start] * max(prompt - 1, 0)  # the prompt's positions: the first window
    for n in range(max(prompt, 1), total + 1):  # n ids before a step: query n - 1 chooses token n
        if n - start > context:
            start = n - max(1, context // 2)
        starts.append(start)
    return starts


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
    except UnidentifiedImageError:
        raise AttnlabError(f"cannot read {label} as an image (not a format Pillow knows); pass a PNG or JPEG "
                           "file") from None
    except OSError as exc:
        raise AttnlabError(f"cannot read {label} as an image ({exc.strerror or exc}); pass a PNG or JPEG "
                           "file") from None
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


@dataclass
class Request:
    """One thing to explore, from the command line or the local server's form: the one path
    both take to a page (:meth:`Explorer.answer`)."""

    text: str | None = None  # a text to read; a language model's prompt
    generate: int = 0  # a language model: tokens to generate after the text
    images: list[int] | None = None  # test-set image indices
    image_files: list[Path] | None = None
    image_dir: Path | None = None
    upload: bytes | None = None  # an uploaded image file
    upload_name: str = "the upload"
    layer: int | None = None  # shown first
    head: int | None = None
    compare: str | None = None  # a text model: a second text, shown beside ``text`` with their difference
    pair: str | None = None  # a BERT classifier: the second text of a sentence pair ([CLS] text [SEP] pair [SEP])
    beam: int = 1  # a translation model: beam width (1 = greedy)
    length_penalty: float | None = None  # a translation model's beam search (None: the run's decode.length_penalty)

    def has_images(self) -> bool:
        return any(x is not None for x in (self.images, self.image_files, self.image_dir, self.upload))


def attention_shape(model: Any) -> tuple[int, int]:
    """(layers, heads) of a model built from attnlab's attention layers: one layer per
    :class:`MultiHeadedAttention`; a lone :class:`AttentionHead` is one layer of one head."""
    from attnlab.layers import AttentionHead, MultiHeadedAttention

    multi = [m for m in model.modules() if isinstance(m, MultiHeadedAttention)]
    if multi:
        return len(multi), multi[0].num_heads
    return sum(isinstance(m, AttentionHead) for m in model.modules()), 1


class Explorer:
    """A trained model with attention, the :class:`attnlab.attended.Reader` that feeds its
    ``attend``, and what the page needs to know about it."""

    def __init__(self, model: Any, meta: dict[str, Any], reader: Any, *, checkpoint: str = "",
                 limits: Limits | None = None) -> None:
        self.model, self.meta, self.reader = model, meta, reader
        self.checkpoint = checkpoint
        self.limits = limits or Limits()
        self.limits.check()
        self.kind: str = reader.kind  # "lm", "classifier", "image" or "translation"
        self.num_layers, self.num_heads = attention_shape(model)
        self.encoder_layers = 0  # a translation model's self-attention layers in its encoder
        if self.kind == "translation":  # layers: the decoder's cross-attention ones
            self.num_layers, self.num_heads, self.encoder_layers = self._translation_shape()

    @classmethod
    def load(cls, checkpoint: str | Path, *, limits: Limits | None = None) -> Explorer:
        from attnlab.tasks import load_reader, load_trained

        task, model, meta = load_trained(checkpoint)
        reader = load_reader(task, model, meta, checkpoint=checkpoint)
        return cls(model, meta, reader, checkpoint=str(checkpoint), limits=limits)

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
            "kind": self.kind, "title": self.reader.title, "model": self.describe(), "checkpoint": self.checkpoint,
            "num_layers": self.num_layers, "num_heads": self.num_heads, "layers": layers, "heads": heads,
            "initial": {"layer": layers.index(layer) if layer is not None else len(layers) - 1,
                        "head": heads.index(head) if head is not None else None},
            "notes": notes + self._subset_note(layers, heads),
        }

    def describe(self) -> str:
        params = count_parameters(self.model)
        if self.kind == "translation":
            layers = (f"{self.encoder_layers} encoder and {self.num_layers} decoder layer(s)" if self.encoder_layers
                      else f"{self.num_layers} attention layer(s)")
            return f"{self.reader.title}: {layers}, {self.num_heads} head(s), {params:,} parameters"
        return f"{self.reader.title}: {self.num_layers} layer(s), {self.num_heads} head(s), {params:,} parameters"

    def token_limit(self) -> int:
        """The most tokens a page reads: --max-tokens, or (None) no limit of the page's own, so the
        reader's (the model's max_len or context) decides, as it does for `attnlab predict`."""
        return self.limits.max_tokens if self.limits.max_tokens is not None else 1 << 30

    def _attend(self, inputs: tuple[Tensor, ...]) -> Attended:
        with torch.no_grad():
            return self.model.attend(*inputs)

    # ------------------------------------------------------------------ one request, one page
    def answer(self, request: Request, *, sampling: Sampling | None = None,
               data_dir: str | Path | None = None, other: Explorer | None = None) -> dict[str, Any] | None:
        """The page's data for ``request``, or None when it asks for nothing. ``data_dir`` holds the
        test set of image indices (default: where the model was trained, else ``./data``). ``other``
        (``--compare-checkpoint``) is a second model of the same shape: B is its page for
        ``request.compare``, or for the same text when there is none."""
        where: dict[str, Any] = {"layer": request.layer, "head": request.head}
        if self.kind == "translation":
            if request.has_images() or request.compare is not None or other is not None or request.generate \
                    or request.pair is not None:
                raise AttnlabError("a translation model explores one source sentence and its translation: pass a "
                                   "TEXT (--images, --compare, --compare-checkpoint, --generate and --pair are for "
                                   "other models)")
            if request.text is None:
                return None
            show_top = sampling.show_top if sampling is not None else Sampling().show_top
            return self.translation(request.text, beam=request.beam, length_penalty=request.length_penalty,
                                    show_top=show_top, **where)
        if request.beam != 1:
            raise AttnlabError(f"--beam is for a translation model; this is a {self.reader.title}")
        if request.pair is not None:
            if request.compare is not None or other is not None:
                raise AttnlabError("--pair shows one sentence pair; pass it without --compare and --compare-checkpoint")
            if request.text is None:
                raise AttnlabError("--pair needs a first text: pass INPUT too (the pair is [CLS] INPUT [SEP] PAIR "
                                   "[SEP])")
            return self.text(request.text, pair=request.pair, layer=request.layer, head=request.head)
        if self.kind == "image":
            if request.text is not None or request.compare is not None or other is not None:
                raise AttnlabError("a ViT explores images: pass --images, --image-file or --image-dir, not text "
                                   "(--compare and --compare-checkpoint are for text models)")
            if not request.has_images():
                return None
            found = self.collect_images(request, data_dir)
            return self.images(found, **where)
        if request.has_images():
            raise AttnlabError(f"--images, --image-file and --image-dir are for a ViT; this is a "
                               f"{self.reader.title}: pass a text")
        if request.generate and self.kind != "lm":
            raise AttnlabError(f"--generate needs a language model (a gpt checkpoint); this is a {self.reader.title}")
        if request.compare is not None or other is not None:
            flag = "--compare" if request.compare is not None else "--compare-checkpoint"
            if request.text is None or not request.text.strip():
                raise AttnlabError(f"{flag} needs a first text to compare with: pass INPUT (or --prompt) too")
            second = other or self
            if (second.kind, second.num_layers, second.num_heads) != (self.kind, self.num_layers, self.num_heads):
                raise AttnlabError(f"--compare-checkpoint needs a model of the same kind and shape: this is a "
                                   f"{self.describe()}, the other a {second.describe()}")
            first = self._one_text(request.text, request.generate, sampling, where)
            text_b = request.compare if request.compare is not None else request.text
            return self.compare(first, second._one_text(text_b, request.generate, sampling, where))
        if self.kind == "lm" and (request.text is not None or request.generate):
            return self.generation(request.text or "", request.generate, sampling, **where)
        return None if request.text is None else self.text(request.text, **where)

    def _one_text(self, text: str, generate: int, sampling: Sampling | None, where: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "lm":
            return self.generation(text, generate, sampling, **where)
        return self.text(text, **where)

    def compare(self, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
        """Two pages' data (the same layers and heads) as one: ``first`` with ``second`` under
        ``"compare"``, aligned position by position up to the shorter; the page draws A - B there.
        ``compare["largest"]`` is, per shown layer and head, the largest |A - B| over the aligned part."""
        assert first["layers"] == second["layers"] and first["heads"] == second["heads"], "one selection"
        a, b = unpack(first["attention"]), unpack(second["attention"])  # (L, H, T, T) each, as the page has them
        ta, tb = a.shape[-1], b.shape[-1]
        n = min(ta, tb)
        prefix = 0
        while prefix < n and first["tokens"][prefix] == second["tokens"][prefix]:
            prefix += 1
        how = (f"A has {ta} tokens, B {tb}: the difference A \u2212 B is taken position by position over "
               f"positions 0 to {n - 1}" + (f" (B's last {tb - n} positions are left out)" if tb > n else "")
               + (f" (A's last {ta - n} positions are left out)" if ta > n else "")
               + f"; the two share their first {prefix} token{'s' * (prefix != 1)}")
        largest = (a[..., :n, :n] - b[..., :n, :n]).abs().amax((-2, -1))  # (L, H)
        data = dict(first)
        data["compare"] = {
            "tokens": second["tokens"], "attention": second["attention"], "notes": second["notes"],
            "prediction": second.get("prediction"), "generation": second.get("generation"),
            "aligned": n, "common_prefix": prefix, "alignment": how, "largest": largest.tolist(),
            "model": second["model"], "checkpoint": second["checkpoint"],
        }
        return data

    def collect_images(self, request: Request, data_dir: str | Path | None = None) -> ImageInputs:
        """The images ``request`` names, at the model's size, with their true labels where known."""
        size, classes = self.reader.image_size, self.reader.labels
        found = empty_images(size)
        if request.upload is not None:
            image, note = read_image(request.upload, size, name=request.upload_name)
            found += ImageInputs(image[None], [request.upload_name], [None], [note] if note else [])
        if request.images is not None:
            found += images_from_test_set(data_dir or data_dir_of(self.meta), request.images, size)
        if request.image_files is not None:
            found += image_files(request.image_files, size, classes)
        if request.image_dir is not None:
            found += image_folder(request.image_dir, size, classes, most=self.limits.max_images)
        return found

    # ------------------------------------------------------------------ text models
    def text(self, text: str, *, pair: str | None = None, layer: int | None = None, head: int | None = None
             ) -> dict[str, Any]:
        """A text (toy: token ids separated by spaces) -> the page's data; a language model's page
        is its :meth:`generation` of no new tokens, a translation model's its :meth:`translation`.
        ``pair``: a BERT classifier's second text; the page gets each token's ``segments`` (token type)."""
        if self.kind == "image":
            raise AttnlabError("a ViT explores images: pass --images, --image-file or --image-dir")
        if not text.strip():
            raise AttnlabError("the text is empty; pass a text to explore")
        if self.kind == "lm" and pair is None:
            return self.generation(text, 0, layer=layer, head=head)
        if self.kind == "translation" and pair is None:
            return self.translation(text, layer=layer, head=head)
        separator = getattr(self.reader, "PAIR", None)  # a reader of sentence pairs types them as A [SEP] B
        if pair is not None:
            if self.kind != "classifier" or not isinstance(separator, str):
                raise AttnlabError(f"--pair needs a BERT classifier (a model that reads sentence pairs with token "
                                   f"types); this is a {self.reader.title}")
            if not pair.strip():
                raise AttnlabError("the --pair text is empty; pass a second sentence")
            text = f"{text} {separator} {pair}"
        layers, heads = self.selection(layer, head)
        encoded = self.reader.text(text, self.token_limit())
        attended = self._attend(encoded.inputs)
        labels = self.reader.labels
        probs = torch.softmax(attended.output.float(), -1)[0]
        k = int(probs.argmax())
        data = self._base(layers, heads, layer, head, encoded.notes)
        data.update({
            "tokens": encoded.tokens, "causal": False,
            "attention": pack(attended.select(layers, heads)),
            "prediction": {"label": labels[k], "probability": float(probs[k]),
                           "probabilities": [[lab, float(p)] for lab, p in zip(labels, probs.tolist())],
                           "received": attended.received().tolist(), "received_what": RECEIVED_WHAT},
        })
        if isinstance(separator, str) and len(encoded.inputs) == 3:  # (ids, lengths, token_type_ids)
            types = encoded.inputs[2][0, : len(encoded.tokens)].tolist()
            if any(types):  # a sentence pair: the page filters A -> B, B -> A, A -> A, B -> B
                data["segments"] = [int(t) for t in types]
        return data

    # ------------------------------------------------------------------ translation models
    def _translation_shape(self) -> tuple[int, int, int]:
        """(cross-attention layers, heads, encoder self-attention layers) of a translation model, read
        off one ``attend`` of a one-piece source and target."""
        one = torch.tensor([[self.reader.bos]])
        attended = self._attend((one, one))
        return attended.num_layers, attended.num_heads, len(attended.extra.get("encoder") or [])

    def translation(self, text: str, *, beam: int = 1, length_penalty: float | None = None, show_top: int = 5,
                    layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """A source sentence translated (``beam`` 1: greedy, else beam search, as ``attnlab translate``),
        then one ``attend(source, <s> + translation)``: its cross-attention is the page's ``attention``
        (rows: the target pieces chosen, each row the decoding step that chose it; columns: the source
        pieces); ``views`` holds it with the encoder's (source x source) and the decoder's (decoder
        inputs x decoder inputs, causal) self-attention; ``translation["steps"]`` each step's candidates."""
        from attnlab.models.decoding_seq2seq import beam_search, greedy_decode, strip

        if self.kind != "translation":
            raise AttnlabError(f"--beam and a translation page need a translation model; this is a "
                               f"{self.reader.title}")
        if not text.strip():
            raise AttnlabError("the text is empty; pass a sentence to translate")
        if beam < 1:
            raise AttnlabError(f"--beam must be at least 1 (1 = greedy), got {beam}")
        layers, heads = self.selection(layer, head)
        r = self.reader
        encoded = r.text(text, self.token_limit())
        src = encoded.inputs[0]  # (1, S)
        if src.size(1) == 0:
            raise AttnlabError("the sentence has no pieces to translate; pass a sentence")
        alpha = float(r.decode.length_penalty if length_penalty is None else length_penalty)
        ids = dict(bos=r.bos, eos=r.eos, pad=r.pad, max_len=r.max_len + 1)  # as `attnlab translate` decodes
        with torch.no_grad():
            found = (greedy_decode(self.model, src, **ids) if beam == 1
                     else beam_search(self.model, src, beam=beam, length_penalty=alpha, **ids))
        row = found.tokens[0].tolist()
        out = strip(row, eos=r.eos, pad=r.pad)
        chosen = out + ([r.eos] if len(out) < len(row) and row[len(out)] == r.eos else [])  # the pieces chosen
        attended = self._attend((src, torch.tensor([[r.bos, *chosen[:-1]]])))  # step i reads <s> + chosen[:i]
        probs = torch.softmax(attended.output[0].float(), -1)  # (T, V): step i's next-piece probabilities
        token = r.token
        steps = []
        for i, piece in enumerate(chosen):
            top = torch.topk(probs[i], min(show_top, probs.size(-1)))
            steps.append({"query": i, "token": token(piece), "probability": float(probs[i, piece]),
                          "top": [[token(int(k)), float(p)] for p, k in zip(top.values, top.indices)]})
        source, target = encoded.tokens, [token(i) for i in chosen]
        inputs = [token(i) for i in [r.bos, *chosen[:-1]]]

        def view(weights: list[Tensor], shown: list[int], queries: list[str], keys: list[str], causal: bool,
                 what: str) -> dict[str, Any]:
            return {"layers": shown, "tokens": queries, "keys": keys, "causal": causal, "what": what,
                    "attention": pack(torch.stack([weights[i][0, heads] for i in shown]).float())}

        views = {"cross": view(attended.attentions, layers, target, source, False,
                               "cross-attention: row i is the decoding step that chose target piece i (the decoder "
                               "had read <s> and the pieces before it), its weights over the source pieces")}
        notes = list(encoded.notes)
        encoder, decoder = attended.extra.get("encoder") or [], attended.extra.get("decoder") or []
        if encoder:
            views["encoder"] = view(encoder, spread(len(encoder), self.limits.max_layers), source, source, False,
                                    "encoder self-attention: each source piece over the source pieces")
        if decoder:
            views["decoder"] = view(decoder, layers, inputs, inputs, True,
                                    "decoder self-attention (causal): each decoder input over the inputs up to it; "
                                    "position i chose target piece i")
        if not encoder and not decoder:
            notes.append("this model has one attention: at each decoding step, the decoder's state over the "
                         "encoder's states of the source pieces; it has no self-attention to show")
        how = "greedy decoding" if beam == 1 else f"beam search (width {beam}, length penalty {alpha:g})"
        data = self._base(layers, heads, layer, head, notes)
        data.update(views["cross"])
        data.update({
            "views": views, "view": "cross",
            "translation": {"source": text, "text": r.detokenize(out), "how": how, "steps": steps,
                            "ended": bool(chosen) and chosen[-1] == r.eos},
        })
        return data

    # ------------------------------------------------------------------ language models
    def generation(self, prompt: str, num_tokens: int, sampling: Sampling | None = None, *,
                   layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """``prompt`` continued by ``num_tokens`` generated tokens (:func:`iter_generate`), then one
        ``attend`` over the whole sequence: causal, so position ``i``'s row is what it attended to
        when it chose token ``i + 1``."""
        from attnlab.models.gpt import iter_generate

        if self.kind != "lm":
            raise AttnlabError("--prompt and --generate need a language model (a gpt checkpoint)")
        if num_tokens < 0:
            raise AttnlabError(f"--generate must be >= 0, got {num_tokens}")
        if num_tokens == 0 and not prompt.strip():
            raise AttnlabError("the text is empty; pass a text, or --prompt and --generate N")
        layers, heads = self.selection(layer, head)
        sampling = sampling or Sampling()
        context = int(self.model.config.context)
        most = self.limits.max_tokens if self.limits.max_tokens is not None else PAGE_TOKENS
        if num_tokens >= most:
            why = "--max-tokens" if self.limits.max_tokens is not None else "a page's limit"
            raise AttnlabError(f"--generate {num_tokens} leaves no room for the prompt: the page holds at most "
                               f"{most:,} tokens ({why})")
        encoded = self.reader.text(prompt, min(context, most - num_tokens))
        prefix: list[int] = encoded.inputs[0][0].tolist()
        new = list(iter_generate(self.model, prefix, num_tokens, temperature=sampling.temperature,
                                 top_k=sampling.top_k, seed=sampling.seed))
        starts = window_starts(len(prefix), len(prefix) + len(new), context)
        if any(starts):  # past the context: each position's row is what it saw in its own window
            attended = self._windowed(prefix + new, starts)
            encoded.notes.append(
                f"{len(prefix) + len(new)} tokens are more than the model's context of {context}: generation slides "
                f"a window, as `attnlab generate` does (when the sequence outgrows the context, the window "
                f"restarts at its last {max(1, context // 2)} tokens), so each position attended only to the "
                "keys of its own window; the keys before it have weight 0 in its row")
        else:
            attended = self._attend((torch.tensor([prefix + new]),))
        probs = torch.softmax(attended.output[0].float(), -1)  # (T, V)
        token = self.reader.token
        steps = []
        for s, chosen in enumerate(new):
            q = len(prefix) - 1 + s  # the position whose output chose token q + 1
            top = torch.topk(probs[q], min(sampling.show_top, probs.size(-1)))
            steps.append({"query": q, "token": token(chosen), "probability": float(probs[q, chosen]),
                          "top": [[token(int(i)), float(p)] for p, i in zip(top.values, top.indices)]})
        data = self._base(layers, heads, layer, head, encoded.notes)
        data.update({
            "tokens": encoded.tokens + [token(i) for i in new], "causal": attended.causal,
            "attention": pack(attended.select(layers, heads)),
            "generation": {"prompt_length": len(prefix), "steps": steps, "how": sampling.describe()} if new else None,
        })
        return data

    def _windowed(self, ids: list[int], starts: list[int]) -> Attended:
        """``attend`` over each sliding window (:func:`window_starts`): one (1, H, T, T) tensor per layer whose
        row ``q`` holds query ``q``'s weights over keys ``starts[q]..q`` of its window (0 elsewhere), and the
        (1, T, V) logits each position had in its window."""
        T = len(ids)
        weights: list[Tensor] = []
        logits: Tensor | None = None
        q0 = 0
        while q0 < T:  # one attend per window: the queries that share a start
            start, q1 = starts[q0], q0
            while q1 + 1 < T and starts[q1 + 1] == start:
                q1 += 1
            part = self._attend((torch.tensor([ids[start:q1 + 1]]),))  # causal: its rows q0.. are the queries'
            if logits is None:
                weights = [a.new_zeros(1, a.size(1), T, T) for a in part.attentions]
                logits = part.output.new_zeros(1, T, part.output.size(-1))
            for w, a in zip(weights, part.attentions):
                w[0, :, q0:q1 + 1, start:q1 + 1] = a[0, :, q0 - start:, :]  # (H, rows, window keys)
            logits[0, q0:q1 + 1] = part.output[0, q0 - start:]
            q0 = q1 + 1
        assert logits is not None, "a sequence has at least one position"
        return Attended(logits, weights, causal=True)

    # ------------------------------------------------------------------ images
    def images(self, inputs: ImageInputs, *, layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """Images of the model's size (:func:`images_from_test_set`, :func:`image_files`, :func:`image_folder`)
        -> the page's data."""
        from attnlab.viz.attention_map import attention_rollout, cls_attention

        if self.kind != "image":
            raise AttnlabError("this model explores text, not images; pass a TEXT")
        images, names, labels = inputs.images, inputs.names, inputs.labels
        if len(images) == 0:
            raise AttnlabError("no images to explore")
        if len(images) > self.limits.max_images:
            raise AttnlabError(f"{len(images)} images are more than --max-images {self.limits.max_images}; "
                               "pass fewer or raise the limit")
        layers, heads = self.selection(layer, head)
        attended = self._attend(self.reader.images(images))
        assert attended.grid is not None, "an image model's attend gives its patch grid"
        probs = torch.softmax(attended.output.float(), -1)
        rollout, mean = attention_rollout(attended.attentions), cls_attention(attended.attentions)  # (n, N) each
        classes = self.reader.labels
        out = []
        for b in range(len(images)):
            k = int(probs[b].argmax())
            truth = labels[b]
            out.append({
                "name": names[b], "png": png_data_uri(images[b]),
                "true": classes[truth] if truth is not None else None, "pred": classes[k],
                "probability": float(probs[b, k]),
                "attention": pack(attended.select(layers, heads, row=b)),
                "rollout": rollout[b].tolist(), "mean": mean[b].tolist(),
            })
        data = self._base(layers, heads, layer, head, list(inputs.notes))
        data.update({"grid": list(attended.grid), "size": list(images.shape[-2:]), "images": out})
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
