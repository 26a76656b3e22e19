"""`Registry`: the one table of names for each kind of thing (tasks, commands, benchmarks, ...).

A registry maps a name to the module that implements it and a one-line help text. The CLI's
help, its dispatch and the lab report are all derived from these tables, so a name is added in
exactly one place. Nothing here imports torch: ``attnlab --help`` lists every name without
loading a single model.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType

from attnlab.errors import AttnlabError

__all__ = ["Registry"]


class Registry:
    """``name -> (module, help)`` for one ``kind`` of name; modules are imported on first use."""

    def __init__(self, kind: str, package: str, entries: dict[str, str]) -> None:
        """``entries`` maps each name to its help; its module is ``package.<name with _ for ->``."""
        self.kind, self.package, self.help = kind, package, dict(entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.help)

    def __contains__(self, name: object) -> bool:
        return name in self.help

    def __len__(self) -> int:
        return len(self.help)

    def names(self) -> list[str]:
        return list(self.help)

    def listing(self) -> str:
        """``"a, b, c"``: the names for a help text."""
        return ", ".join(self.help)

    def module_name(self, name: str) -> str:
        return f"{self.package}.{name.replace('-', '_')}"

    def load(self, name: str) -> ModuleType:
        """The module for ``name``; a clear :class:`AttnlabError` if unknown or not installed."""
        if name not in self.help:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise AttnlabError(f"unknown {self.kind} '{name}'{hint} (choose from: {self.listing()})")
        module = self.module_name(name)
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                available = [n for n in self.help if importlib.util.find_spec(self.module_name(n)) is not None]
                raise AttnlabError(f"{self.kind} '{name}' is not available in this installation ({module} "
                                   f"is missing); available: {', '.join(available) or 'none'}") from None
            raise
