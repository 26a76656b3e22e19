"""The package's import graph flows one way (DEVELOPERS.md, "Layers"):

    core -> layers -> models | data -> engine -> tasks -> bench | lab | viz -> commands -> cli

A module may import its own group or any lower level, never a higher level and never a sibling
group on its own level (models and data do not know each other; neither do bench, lab and viz).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attnlab"

# group -> level
LEVELS = {
    "core": 0, "layers": 1, "models": 2, "data": 2, "engine": 3, "tasks": 4,
    "bench": 5, "lab": 5, "viz": 5, "commands": 6, "cli": 7,
}
CORE = {"__init__", "errors", "config", "registry", "vocab", "files", "attention", "attended", "losses", "metrics",
        "measure", "memory", "device"}
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
