"""Imports go downward (ARCHITECTURE.md, "Layout"), and each package's __all__ is real."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gm_agent"

LAYERS = {
    0: {"events", "errors", "clock", "settings", "faults", "_bulk", "__init__"},
    1: {"journal", "llm", "jobs", "patches", "tools", "policy", "skills", "schemes"},
    2: {"kernel"},
    3: {"triggers", "tui", "cli", "_render", "_export", "_doctor", "_learn", "__main__"},
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def top_module(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imported_gm_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gm_agent."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gm_agent."))
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_only_go_downward(path: Path) -> None:
    here = top_module(path)
    for target in imported_gm_modules(path) - {here}:
        assert LAYER_OF[target] <= LAYER_OF[here], (
            f"{here} (layer {LAYER_OF[here]}) imports {target}"
        )
        if LAYER_OF[here] == 0:
            assert LAYER_OF[target] == 0


@pytest.mark.parametrize(
    "name",
    [
        "gm_agent",
        "gm_agent.events",
        "gm_agent.errors",
        "gm_agent.clock",
        "gm_agent.journal",
        "gm_agent.kernel",
        "gm_agent.llm",
        "gm_agent.jobs",
        "gm_agent.patches",
        "gm_agent.tools",
        "gm_agent.settings",
        "gm_agent.skills",
        "gm_agent.schemes",
        "gm_agent.tui",
    ],
)
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []
