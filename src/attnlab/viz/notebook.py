"""attnlab in a notebook: the attention explorer inline, and learning curves as a figure.

:func:`explore` takes a checkpoint (a run directory) or a model in memory and returns an
:class:`ExplorerView`, which Jupyter, VS Code and Colab display inline: the explorer's one offline
page (:func:`attnlab.viz.explorer_page.render`) inside an isolated frame (``<iframe srcdoc>``, with
scripts allowed and nothing else), so its CSS and JavaScript never touch the notebook's::

    attnlab.explore("runs/gpt", prompt="ROMEO :", generate=20)
    attnlab.explore(model, "to be or not", tokenizer=tok)         # a DialogueGPT built in a cell above
    attnlab.explore(classifier, "a fine film", vocab=vocab)       # a sentiment classifier with attention
    attnlab.explore("runs/vit", images=[0, 5, 7])                 # test-set images by index
    attnlab.explore("runs/translate", "I am cold.", beam=4)       # a translation and its cross-attention
    attnlab.explore("runs/bert", "a thin plot", pair="fine actors")  # a BERT sentence pair
    attnlab.explore(vit, images=uint8_images, labels=classes)     # images in memory

A checkpoint goes the command line's way (:meth:`Explorer.load`, a :class:`Request`,
:meth:`Explorer.answer`), so the page's data is what ``attnlab explore`` writes. A model in memory
is read by its task's own reader (:func:`attnlab.tasks.load_reader`), given the pieces a
checkpoint's ``meta`` would hold: ``tokenizer`` for a language model, ``vocab`` (and ``labels``)
for a text classifier, ``labels`` for a ViT, or the whole ``meta`` of
``TASKS.load(name).load_model``. Its task is the one whose recipe builds that kind of model (the
task config's ``model`` type is the model's config type, or comes from the model's own module).
"""

from __future__ import annotations

import copy
import dataclasses
import html
import importlib
import sys
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

__all__ = ["ExplorerView", "explore", "curves", "attention_map", "task_of"]

_NEEDS = {  # what a reader takes from a checkpoint's meta -> the keyword that gives it
    "tokenizer": "tokenizer=MyTokenizer (the one its vocabulary was built by)",
    "vocab": "vocab=[words] (the words of its embedding rows, attnlab.vocab's specials first)",
}


class ExplorerView:
    """The explorer's page for one input: displayed inline by a notebook (``_repr_html_``),
    written out by :meth:`save`; ``data`` is the page's data (:meth:`Explorer.answer`'s dict)."""

    def __init__(self, data: dict[str, Any], *, height: int = 720) -> None:
        self.data, self.height = data, height

    def html(self) -> str:
        """The whole self-contained page."""
        from attnlab.viz.explorer_page import render

        return render(self.data)

    def _repr_html_(self) -> str:
        # srcdoc holds the page HTML-escaped; sandbox without allow-same-origin isolates it fully
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" sandbox="allow-scripts" '
                f'title="{html.escape(self.data["title"], quote=True)}" '
                f'style="width: 100%; height: {int(self.height)}px; border: 1px solid #ddd; resize: vertical">'
                "</iframe>")

    def save(self, path: str | Path) -> Path:
        """Write the page (one offline HTML file) to ``path``; returns it."""
        from attnlab.viz.explorer_page import write

        return write(self.data, path)

    def __repr__(self) -> str:
        return f"<attnlab explorer page: {self.data['model']}; shown inline in a notebook, or .save('page.html')>"


def explore(model_or_checkpoint: Any, text: str | None = None, *, prompt: str | None = None, generate: int = 0,
            images: Any = None, pair: str | None = None, beam: int = 1, length_penalty: float | None = None,
            tokenizer: Any = None, vocab: list[str] | None = None,
            labels: list[str] | None = None, meta: dict[str, Any] | None = None, task: str | None = None,
            data_dir: str | Path | None = None, layer: int | None = None, head: int | None = None,
            temperature: float = 0.0, top_k: int | None = None, seed: int = 0, show_top: int = 5,
            limits: Any = None, height: int = 720) -> ExplorerView:
    """The attention explorer for ``text`` (a classifier's input, a language model's prompt), a
    ``prompt`` continued by ``generate`` tokens (greedy unless ``temperature`` > 0), or ``images``
    (a ViT: test-set indices, image files, a folder, or uint8 (n, 3, S, S) images), as an
    :class:`ExplorerView`. A BERT classifier reads ``text`` and ``pair`` as a sentence pair; a
    translation model translates ``text`` (greedy, or beam search of width ``beam``).
    ``model_or_checkpoint``: a run or checkpoint directory, or a model with
    attention (one that answers ``attend``) with what its reader needs (see the module's help)."""
    from attnlab.viz.explorer import Explorer, ImageInputs, Limits, Request, Sampling

    if text is not None and prompt is not None:
        raise AttnlabError("pass either text or prompt=, not both")
    limits = limits or Limits()
    if isinstance(model_or_checkpoint, (str, Path)):
        if any(x is not None for x in (tokenizer, vocab, labels, meta, task)):
            raise AttnlabError("tokenizer=, vocab=, labels=, meta= and task= are for a model in memory; a "
                               "checkpoint brings its own")
        explorer = Explorer.load(model_or_checkpoint, limits=limits)
    else:
        explorer = Explorer(*_in_memory(model_or_checkpoint, tokenizer, vocab, labels, meta, task), limits=limits)
    request = Request(text=prompt if prompt is not None else text, generate=generate, layer=layer, head=head,
                      pair=pair, beam=beam, length_penalty=length_penalty)
    tensor_images = _is_tensor(images)
    if images is not None and not tensor_images:
        _add_images(request, images)
    sampling = Sampling(temperature=temperature, top_k=top_k, seed=seed, show_top=show_top)
    training = explorer.model.training
    explorer.model.eval()  # dropout off: the page shows the model as it predicts
    data: dict[str, Any] | None
    try:
        if tensor_images:
            if request.text is not None:
                raise AttnlabError("pass images or a text, not both")
            images = _checked_images(images, explorer.reader.image_size)
            n = len(images)
            found = ImageInputs(images, [f"image {i}" for i in range(n)], [None] * n, [])
            data = explorer.images(found, layer=layer, head=head)
        else:
            data = explorer.answer(request, sampling=sampling, data_dir=data_dir)
    finally:
        explorer.model.train(training)
    if data is None:
        wanted = {"image": "images=", "lm": "a text, or prompt= and generate=N"}.get(explorer.kind, "a text")
        raise AttnlabError(f"nothing to explore: pass {wanted}")
    return ExplorerView(data, height=height)


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _checked_images(images: Any, size: int) -> Any:
    """uint8 (n, 3, size, size) images (one image (3, size, size) gets its batch axis), or one clear error."""
    import torch

    if images.dim() == 3:
        images = images[None]
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1:] != (3, size, size):
        raise AttnlabError(f"images= takes uint8 images (n, 3, {size}, {size}) for this model, got "
                           f"{images.dtype} {tuple(images.shape)}")
    return images


def _add_images(request: Any, images: Any) -> None:
    """``images`` as the request's test-set indices, image files or folder."""
    if isinstance(images, (str, Path)):
        if Path(images).is_dir():
            request.image_dir = Path(images)
        else:
            request.image_files = [Path(images)]
    elif isinstance(images, (list, tuple)) and all(isinstance(i, int) for i in images):
        request.images = list(images)
    elif isinstance(images, (list, tuple)) and all(isinstance(i, (str, Path)) for i in images):
        request.image_files = [Path(p) for p in images]
    else:
        raise AttnlabError("images= takes test-set indices [0, 5, 7], image files, a folder, or uint8 images "
                           f"(n, 3, S, S); got {type(images).__name__}")


def _in_memory(model: Any, tokenizer: Any, vocab: list[str] | None, labels: list[str] | None,
               meta: dict[str, Any] | None, task: str | None) -> tuple[Any, dict[str, Any], Any]:
    """(model on the CPU, its meta, its reader) for a model in memory."""
    import torch

    from attnlab.tasks import TASKS, load_reader

    if not isinstance(model, torch.nn.Module):
        raise AttnlabError(f"explore takes a run directory or a model (a torch.nn.Module), got {type(model).__name__}")
    name = type(model).__name__
    if not callable(getattr(model, "attend", None)):
        raise AttnlabError(f"{name} has no attend method, so there is no attention to look at; explore shows "
                           "models with attention (any model answering attend: see attnlab.attended)")
    if task is None:
        task = task_of(model)
    elif task not in TASKS:
        raise AttnlabError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    full = _meta(model, TASKS.load(task).CONFIG, tokenizer, vocab, labels, meta)
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()  # the explorer reads on the CPU; the caller's model stays put
    try:
        reader = load_reader(task, model, full)
    except KeyError as missing:
        key = missing.args[0]
        raise AttnlabError(f"{name} needs its {key} to read an input: pass {_NEEDS.get(key, f'meta={{{key!r}: ...}}')}"
                           ) from None
    if meta is None:
        reader.title = name  # the model's own class: no training run named it
    return model, full, reader


def _meta(model: Any, config_cls: type, tokenizer: Any, vocab: list[str] | None, labels: list[str] | None,
          meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint's meta would hold for ``model``: its task's default config with the
    model's own config over it, and the tokenizer, vocabulary and labels given."""
    from attnlab.config import config_to_dict

    out = copy.deepcopy(meta) if meta is not None else {}
    if "config" not in out:
        out["config"] = config_to_dict(config_cls())
        config = getattr(model, "config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            out["config"]["model"] = config_to_dict(config)
    if tokenizer is not None:
        size = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(size, int) and size and len(tokenizer.vocab) > size:
            raise AttnlabError(f"the tokenizer has {len(tokenizer.vocab)} tokens, more than the model's vocab_size "
                               f"{size}; pass the tokenizer the model was built for")
        out["tokenizer"] = tokenizer.to_dict()
    if vocab is not None:
        out["vocab"] = list(vocab)
    if labels is not None:
        out["labels"] = out["classes"] = list(labels)
    return out


def task_of(model: Any) -> str:
    """The task whose recipe builds ``model``: its config's ``model`` field has the model's config
    type, or (a model built from plain arguments, such as the course's classifiers) a type its
    model's module exports."""
    from attnlab.tasks import TASKS

    module = importlib.import_module(type(model).__module__)
    config_type = type(getattr(model, "config", None))
    by_module = []
    for name in TASKS:
        wanted = _model_config_type(TASKS.load(name).CONFIG)
        if wanted is config_type:
            return name
        if wanted is not None and getattr(module, wanted.__name__, None) is wanted:
            by_module.append(name)
    if len(by_module) == 1:
        return by_module[0]
    raise AttnlabError(f"cannot tell which task a {type(model).__name__} belongs to; pass task= (one of "
                       f"{', '.join(TASKS)})")


def _model_config_type(config_cls: type) -> type | None:
    """The type of a task config's ``model`` field (its annotation is a name in the task's module)."""
    field = {f.name: f for f in dataclasses.fields(config_cls)}.get("model")
    if field is None:
        return None
    hint = field.type
    found = vars(sys.modules[config_cls.__module__]).get(hint) if isinstance(hint, str) else hint
    return found if isinstance(found, type) else None


def curves(run: str | Path | list[str | Path], *, y: str = "val_loss", x: str = "step",
           labels: list[str] | None = None, title: str | None = None) -> Any:
    """A matplotlib Figure of ``y`` against ``x`` for one run directory or several (a notebook shows it)."""
    from attnlab.viz.curves import curves_figure

    runs = [Path(r) for r in run] if isinstance(run, list) else [Path(run)]
    return curves_figure(runs, y=y, x=x, labels=labels, title=title)


def attention_map(model_or_checkpoint: Any, images: Any, *, labels: list[int] | None = None, rollout: bool = False,
                  classes: list[str] | None = None, cols: int = 5) -> Any:
    """An image model's attention over uint8 ``images`` (n, 3, S, S) as a matplotlib Figure (what
    ``attnlab attention-map`` draws): each image beside the class token's attention (mean over heads
    and layers) or, with ``rollout``, attention rollout, titled with the prediction (and the true
    class when ``labels`` are given). ``model_or_checkpoint``: a run directory or a model in memory
    that answers ``attend`` with a patch grid (``classes`` name its outputs)."""
    import torch

    from attnlab.viz.attention_map import attention_rollout, cls_attention, grid_figure, upsample
    from attnlab.viz.explorer import Explorer

    if isinstance(model_or_checkpoint, (str, Path)):
        explorer = Explorer.load(model_or_checkpoint)
    else:
        explorer = Explorer(*_in_memory(model_or_checkpoint, None, None, classes, None, None))
    if explorer.kind != "image":
        raise AttnlabError(f"attention_map draws an image model's attention; this is a {explorer.reader.title}: "
                           "use attnlab.explore for text")
    images = _checked_images(images, explorer.reader.image_size)
    if labels is not None and len(labels) != len(images):
        raise AttnlabError(f"give one label per image: {len(images)} images, {len(labels)} labels")
    training = explorer.model.training
    explorer.model.eval()
    try:
        with torch.no_grad():
            attended = explorer.model.attend(*explorer.reader.images(images))
    finally:
        explorer.model.train(training)
    scores = (attention_rollout if rollout else cls_attention)(attended.attentions)  # (n, patches)
    maps = upsample(scores, attended.grid, (images.shape[-2], images.shape[-1]))  # (n, H, W)
    names, preds = explorer.reader.labels, attended.output.argmax(-1).tolist()
    titles = [f"pred: {names[p]}" if labels is None else f"true: {names[t]}\npred: {names[p]}"
              for p, t in zip(preds, labels or preds)]
    colors = None if labels is None else ["green" if t == p else "red" for t, p in zip(labels, preds)]
    what = "attention rollout" if rollout else "class-token attention, mean over heads and layers"
    return grid_figure(images, maps, titles, colors=colors, cols=cols, suptitle=what)
