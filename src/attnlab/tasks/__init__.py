"""Tasks: what ``attnlab train|eval NAME`` runs. One module per task, all following one contract.

A task module is thin glue between a model family (:mod:`attnlab.models`), its data
(:mod:`attnlab.data`) and the engine (:mod:`attnlab.engine`). It defines::

    CONFIG: type     # the recipe: a dataclass holding `train: TrainConfig`, with PRESETS and DEFAULT_PRESET
    INPUTS: type     # where the data comes from: a dataclass of paths (each field is a command-line flag)

    def train(cfg, inputs, run_dir, *, resume=False, progress=None, allow_changed_data=False) -> dict[str, float]
    # resume: False, True (the run's latest checkpoint) or an earlier checkpoint of the run
    def evaluate(checkpoint, inputs, *, device="auto") -> dict[str, float]
    def load_model(checkpoint) -> tuple[nn.Module, dict]   # trained model (eval mode, CPU), checkpoint meta

and optionally ``MODELS`` (the names ``--model`` picks, each also a preset), ``EXAMPLE``, and, for
a task whose models have attention::

    def reader(model, meta) -> attnlab.attended.Reader   # how the model reads a person's text or images

and, for a task whose models can start from pretrained weights (:mod:`attnlab.pretrained`)::

    def load_pretrained(source) -> tuple[nn.Module, dict]   # the model, and the meta a run would have

through which the explorer, ``explain`` and ``attention-map`` feed the model's ``attend``
(:func:`load_reader`).
``train`` seeds, then builds the model, then calls :func:`attnlab.engine.fit`; it returns the
final metrics. Resuming, it takes the vocabulary and tokenizer from the checkpoint
(:func:`resumed_meta`), never rebuilding them, and names its data files with their checksums in
``meta["inputs"]``, which the engine compares with the run's. Commands, benchmarks, the lab and
the visualisations reach a trained model only through ``load_model`` (:func:`load_trained`
finds the task from the checkpoint). A pretrained source (``DIR`` in Hugging Face layout,
``hf:NAME``, nanoGPT's ``ckpt.pt``: :mod:`attnlab.pretrained`) is accepted wherever a
checkpoint is: its task's ``load_pretrained(source) -> (model, meta)`` builds the same meta a
run of that task would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.registry import Registry

__all__ = ["TASKS", "load_trained", "load_reader", "resumed_meta"]

TASKS = Registry("task", "attnlab.tasks", {
    "toy": "most-frequent-token classification on generated data (engine demo, seconds on a CPU)",
    "gpt": "GPT language model (DialogueGPT on Tiny Shakespeare)",
    "lstm-lm": "LSTM language model baseline",
    "vit": "Vision Transformer on CIFAR-10",
    "text": "sentiment classification on IMDB (--model NAME)",
    "translate": "English -> French translation on Tatoeba (--model transformer|rnn)",
})


def resumed_meta(run_dir: Path, resume: bool | str | Path) -> dict[str, Any] | None:
    """The meta of the checkpoint a resume continues from: the run's latest, or the checkpoint
    ``resume`` names (``--resume-from``); None for a new run."""
    from attnlab.engine.checkpoint import latest, read_meta

    if resume is False:
        return None
    if resume is True:
        return read_meta(run_dir, which="latest") if latest(run_dir) is not None else None
    return read_meta(resume, which="latest")


def load_trained(checkpoint: str | Path, *, tasks: tuple[str, ...] | None = None,
                 what: str = "a trained model", hint: str = "pass the run directory of a matching `attnlab train` run"
                 ) -> tuple[str, Any, dict[str, Any]]:
    """``(task, model, meta)`` of any checkpoint, through its task's ``load_model`` (the model's
    type depends on the task, hence ``Any``).

    ``tasks`` limits which tasks are accepted; another task's checkpoint is an error that
    names ``what`` was expected and, with ``hint``, what to do instead.
    """
    from attnlab.engine.checkpoint import read_meta
    from attnlab.errors import AttnlabError
    from attnlab.pretrained.source import is_pretrained

    if is_pretrained(checkpoint):  # a model directory, hf:NAME or nanoGPT's ckpt.pt (attnlab.pretrained)
        return _load_pretrained(checkpoint, tasks, what, hint)
    task = read_meta(checkpoint).get("task")
    if not isinstance(task, str) or task not in TASKS or (tasks is not None and task not in tasks):
        wanted = f" ({', '.join(tasks)})" if tasks else ""
        raise AttnlabError(f"checkpoint {checkpoint} is from task '{task}', not {what}{wanted}; {hint}")
    model, meta = TASKS.load(task).load_model(checkpoint)
    return task, model, meta


def _load_pretrained(spec: str | Path, tasks: tuple[str, ...] | None, what: str, hint: str
                     ) -> tuple[str, Any, dict[str, Any]]:
    """``(task, model, meta)`` of a pretrained source, through its task's ``load_pretrained(source)``."""
    from attnlab.errors import AttnlabError
    from attnlab.pretrained import family
    from attnlab.pretrained.source import resolve

    source = resolve(spec)
    task = str(family(source).TASK)
    if tasks is not None and task not in tasks:
        raise AttnlabError(f"{spec} is a {source.architecture} ({task}), not {what} ({', '.join(tasks)}); {hint}")
    model, meta = TASKS.load(task).load_pretrained(source)
    return task, model, meta


def load_reader(task: str, model: Any, meta: dict[str, Any], *, checkpoint: str | Path = "") -> Any:
    """The :class:`attnlab.attended.Reader` of a trained model of ``task``: how a person's text or
    images become the inputs of its ``attend``. A model without attention is one clear error."""
    from attnlab.errors import AttnlabError

    module = TASKS.load(task)
    reader = getattr(module, "reader", None)
    found = reader(model, meta) if reader is not None else None
    if found is None:
        name = meta.get("config", {}).get("model", {}).get("name")
        what = f"the {task} '{name}' model" if isinstance(name, str) else f"the {TASKS.help[task]}"
        where = f" ({checkpoint})" if checkpoint else ""
        raise AttnlabError(f"{what}{where} has no attention to look at; pass a checkpoint of {ATTENDING}")
    return found


ATTENDING = ("gpt, text (--model attention, transformer or bert), vit, translate or toy, or a pretrained "
             "GPT-2, BERT or ViT directory")  # the tasks with a reader
