"""The commands in a shell command line, parsed (bashlex), not matched by substring."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["commands_of"]


@functools.cache
def _visitor_class() -> Any:
    """bashlex builds its parser tables on import (about 80 ms): import it when needed."""
    import bashlex  # pyright: ignore[reportMissingTypeStubs]

    class Commands(bashlex.ast.nodevisitor):  # type: ignore[misc]
        def __init__(self) -> None:
            self.found: list[str] = []

        def visitcommand(self, node: Any, parts: list[Any]) -> None:
            _collect(self.found, parts)

    return Commands


def _collect(found: list[str], parts: list[Any]) -> None:
    words: list[str] = []
    for part in parts:
        if part.kind == "word":
            words.append(part.word)
        elif part.kind == "redirect" and getattr(part.output, "kind", None) == "word":
            words += [part.type, part.output.word]  # "> file", ">> file"
    if words:
        found.append(" ".join(words))


def commands_of(line: str) -> list[str] | None:
    """Each simple command in ``line``, as its words (and ``> file`` redirections)
    joined by one space.

    Pipelines, ``&&``, ``||``, ``;``, ``if``/``for`` bodies and command
    substitutions (``$(...)``, backticks) are split into their commands;
    variable assignments before a command (``FOO=1 git push``) are left out.

    Returns:
        The commands in order, or ``None`` when bashlex cannot parse the line
        (arithmetic expansion, some here-documents...): the caller must then be
        conservative.
    """
    visitor: Any = _visitor_class()()
    import bashlex  # pyright: ignore[reportMissingTypeStubs]

    parse: Any = getattr(bashlex, "parse")  # noqa: B009 - bashlex has no type hints
    try:
        trees: list[Any] = parse(line)
    except Exception:  # bashlex raises its own errors and, on odd input, others
        return None
    for tree in trees:
        visitor.visit(tree)
    return list(visitor.found)
