"""Task registry: what ``attnlab train|eval NAME`` runs. Modules are imported on first use."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from attnlab.errors import AttnlabError

TASKS: dict[str, str] = {
    "toy": "attnlab.tasks.toy",
    "gpt": "attnlab.tasks.gpt",
    "lstm-lm": "attnlab.tasks.lstm_lm",
    "vit": "attnlab.tasks.vit",
    "text": "attnlab.tasks.text",
}


def load_module(kind: str, name: str, module: str, known: list[str]) -> ModuleType:
    """Import ``module`` for ``kind`` ``name``; a clear ``AttnlabError`` if it is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise AttnlabError(
                f"{kind} '{name}' is not available in this installation ({module} is missing); "
                f"available: {', '.join(known) or 'none'}"
            ) from None
        raise


def available_tasks() -> list[str]:
    """The registered tasks whose module is installed."""
    return [n for n, m in TASKS.items() if importlib.util.find_spec(m) is not None]


def load_task(name: str) -> ModuleType:
    """The task module for ``name`` (see DEVELOPERS.md for the contract it follows)."""
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AttnlabError(f"unknown task '{name}'{hint} (choose from: {', '.join(TASKS)})")
    return load_module("task", name, TASKS[name], available_tasks())
