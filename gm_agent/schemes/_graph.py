"""The steps as a graph: unique names, known dependencies, no cycles, and levels.

Edges go from a step to the steps in its ``depends_on``. A level is a set of
steps whose dependencies all lie in earlier levels: they may run concurrently.
"""

from __future__ import annotations

from gm_agent.errors import SchemeError
from gm_agent.schemes._model import Scheme
from gm_agent.schemes._steps import Step

__all__ = ["ancestors", "check_graph", "topological_order"]


def check_graph(scheme: Scheme) -> None:
    """Check step names are unique, ``depends_on`` names known steps, and there is no cycle.

    Raises:
        SchemeError: the first problem, with the line of the step at fault.
    """
    _unique_names(scheme)
    _known_dependencies(scheme)
    cycle = _find_cycle(scheme)
    if cycle:
        first = scheme.step(cycle[0])
        raise SchemeError(
            f"depends_on makes a cycle: {' -> '.join(cycle)} (each waits for the next, "
            f"so none can start); remove one of these dependencies",
            path=_shown(scheme),
            line=first.line,
        )


def _shown(scheme: Scheme) -> str:
    return str(scheme.path) if scheme.path else f"scheme {scheme.name!r}"


def _unique_names(scheme: Scheme) -> None:
    seen: dict[str, Step] = {}
    for step in scheme.steps:
        if step.name in seen:
            raise SchemeError(
                f"two steps are named {step.name!r} (lines {seen[step.name].line} and "
                f"{step.line}); step names must be unique: rename one",
                path=_shown(scheme),
                line=step.line_of("name"),
            )
        seen[step.name] = step


def _known_dependencies(scheme: Scheme) -> None:
    names = [step.name for step in scheme.steps]
    for step in scheme.steps:
        for index, needed in enumerate(step.depends_on):
            if needed not in names:
                raise SchemeError(
                    f"unknown step {needed!r} in depends_on of {step.name!r} "
                    f"(line {step.line}); known: {', '.join(names)}",
                    path=_shown(scheme),
                    line=step.line_of(f"depends_on.{index}"),
                )


def _find_cycle(scheme: Scheme) -> list[str]:
    """A cycle as ``[a, b, a]`` starting at its earliest step in the file, or ``[]``."""
    needs = {step.name: step.depends_on for step in scheme.steps}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return []
        for needed in needs.get(name, ()):
            found = visit(needed, [*path, name])
            if found:
                return found
        done.add(name)
        return []

    for step in scheme.steps:
        cycle = visit(step.name, [])
        if cycle:
            order = [s.name for s in scheme.steps]
            start = min(range(len(cycle) - 1), key=lambda i: order.index(cycle[i]))
            ring = cycle[:-1]
            ring = ring[start:] + ring[:start]
            return [*ring, ring[0]]
    return []


def topological_order(scheme: Scheme) -> list[list[str]]:
    """The steps in levels that may run concurrently, each level in file order.

    A step's level is one more than the highest level of its ``depends_on``
    (0 without any), so a diamond ``a; b, c after a; d after b, c`` gives
    ``[["a"], ["b", "c"], ["d"]]``.

    Raises:
        SchemeError: the graph is invalid (see :func:`check_graph`).
    """
    check_graph(scheme)
    level: dict[str, int] = {}

    def level_of(step: Step) -> int:
        if step.name not in level:
            below = [level_of(scheme.step(name)) for name in step.depends_on]
            level[step.name] = 1 + max(below, default=-1)
        return level[step.name]

    levels: list[list[str]] = []
    for step in scheme.steps:
        at = level_of(step)
        levels.extend([] for _ in range(at + 1 - len(levels)))
        levels[at].append(step.name)
    return levels


def ancestors(scheme: Scheme, name: str) -> set[str]:
    """The steps ``name`` depends on, directly or through their own ``depends_on``.

    Raises:
        SchemeError: no step is called ``name``.
    """
    names = {step.name: step for step in scheme.steps}
    if name not in names:
        raise SchemeError(f"no step named {name!r}; known: {', '.join(names)}", path=_shown(scheme))
    found: set[str] = set()
    todo = list(names[name].depends_on)
    while todo:
        needed = todo.pop()
        if needed not in found and needed in names:
            found.add(needed)
            todo.extend(names[needed].depends_on)
    return found
