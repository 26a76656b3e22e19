"""The package's import graph flows one way (DEVELOPERS.md, "Layers"):

    core -> layers -> models | data -> pretrained -> engine -> tasks -> bench | lab | viz -> commands -> cli

A module may import its own group or any lower level, never a higher level and never a sibling
group on its own level (models and data do not know each other; neither do bench, lab and viz).
Outside ``attnlab.tasks``, the tasks are reached through the contract only: ``attnlab.tasks``
itself (``TASKS``, ``load_trained``, ...), never a task module. And no import circle anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attnlab"

# group -> level
LEVELS = {
    "core": 0, "layers": 1, "models": 2, "data": 2, "pretrained": 2.5, "engine": 3, "tasks": 4,
    "bench": 5, "lab": 5, "viz": 5, "commands": 6, "cli": 7,
}
CORE = {"__init__", "errors", "options", "config", "registry", "vocab", "files", "attention", "attended", "losses",
        "metrics", "measure", "memory", "device", "threads", "allocator", "native", "attention_kernel"}
LAYERS = {"positional", "layers", "lowrank"}


def group(module: str) -> str:
    """``attnlab.data.images`` -> ``data``; ``attnlab.attention`` -> ``core``."""
    parts = module.split(".")[1:] or ["__init__"]
    head = parts[0]
    if head in CORE:
        return "core"
    if head in LAYERS:
        return "layers"
    assert head in LEVELS, f"{module}: place it in a layer of tests/test_layering.py (and DEVELOPERS.md)"
    return head


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path
    return out


def imported(path: Path) -> set[str]:
    """Every ``attnlab.*`` module imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("attnlab")}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the project uses absolute imports only)"
            if node.module and node.module.startswith("attnlab"):
                found.add(node.module)
    return found


def test_every_module_has_a_layer():
    for name in modules():
        group(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_flow_down(name):
    path = modules()[name]
    mine = group(name)
    bad = []
    for target in imported(path):
        theirs = group(target)
        if theirs != mine and LEVELS[theirs] >= LEVELS[mine]:
            bad.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert not bad, "\n".join(bad)


def _type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations only."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def edges(path: Path, *, annotations: bool = True) -> set[str]:
    """The ``attnlab`` modules ``path`` imports (also inside functions), with ``from attnlab.data
    import cifar10`` read as an import of the submodule ``attnlab.data.cifar10``. Without
    ``annotations``, the imports under ``if TYPE_CHECKING:`` (never run) are left out."""
    known = modules()
    found = set()
    todo: list[ast.AST] = [ast.parse(path.read_text())]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("attnlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("attnlab"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
        if annotations or not _type_checking(node):
            todo.extend(ast.iter_child_nodes(node))
        else:
            todo.extend(getattr(node, "orelse", []))
    return found


@pytest.mark.parametrize("name", sorted(n for n in modules() if group(n) != "tasks"))
def test_tasks_are_reached_through_the_contract_only(name):
    """Commands, benchmarks, the lab and the visualisations import ``attnlab.tasks`` (TASKS,
    load_trained, resumed_meta, ...; a task module's contract names through ``TASKS.load(name)``),
    never ``attnlab.tasks.<module>``: task modules are glue, and what others need lives in models/,
    data/ or the engine."""
    inside = sorted(target for target in edges(modules()[name]) if target.startswith("attnlab.tasks."))
    assert not inside, f"{name} imports {', '.join(inside)}; import from attnlab.tasks, models/ or data/ instead"


def test_no_import_cycle():
    """The package's import graph is acyclic: imports inside functions count (a module that needs
    another only later still depends on it), imports for annotations only do not (they never run)."""
    known = modules()
    graph = {name: {t for t in edges(path, annotations=False) if t in known and t != name}
             for name, path in known.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:  # depth first; a module met again on the path is a cycle
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
