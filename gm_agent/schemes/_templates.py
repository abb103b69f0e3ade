"""Checking a scheme's templates before anything runs.

Each template is parsed (and compiled, so an unknown filter is caught) by the
environment it will be rendered with, then its syntax tree is walked: every
``params.X`` must be declared, and every ``steps.X`` must be a step the
template's step depends on, directly or through ``depends_on`` (an earlier step
that is not an ancestor may not have run yet). ``jinja2.meta`` alone cannot
tell this: it sees ``steps`` and ``params``, not their attributes.

This module imports Jinja2 (about 15 ms), so it is imported only when a scheme
is loaded (:func:`~gm_agent.schemes.parse_scheme`), not by every ``gm run``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

from jinja2 import TemplateSyntaxError, meta, nodes

from gm_agent.errors import SchemeError
from gm_agent.schemes._graph import ancestors
from gm_agent.schemes._model import Scheme
from gm_agent.schemes._render import STEP_FIELDS, environment
from gm_agent.schemes._steps import Step, templates_of

__all__ = ["check_templates"]

_SEEN = f"templates see params.NAME and steps.NAME.{{{','.join(STEP_FIELDS)}}}"


def check_templates(scheme: Scheme, literal: Collection[tuple[object, str]] = ()) -> None:
    """Check every template of every step of ``scheme`` (graph already checked).

    ``literal`` holds ``(step index, dotted key)`` of the templates written as
    literal blocks (``|``): a problem on a later line of one of those is told at
    its own line; in other templates, at the template's first line.

    Raises:
        SchemeError: a syntax error, an unknown name, an undeclared parameter, a
            step that is not an ancestor, or a ``when`` with no template in it;
            with the line.
    """
    for index, step in enumerate(scheme.steps):
        for key, text in templates_of(step):
            _Check(scheme, step, key, (index, key) in literal).template(text)


class _Check:
    """One template of one step, and where to say a problem is."""

    def __init__(self, scheme: Scheme, step: Step, key: str, literal: bool) -> None:
        self.scheme = scheme
        self.step = step
        self.key = key
        self.literal = literal

    def fail(self, message: str, lineno: int = 1) -> SchemeError:
        """The error for ``message``, at line ``lineno`` of the template."""
        offset = lineno - 1 if self.literal else 0
        within = f" (line {lineno} of the template)" if lineno > 1 and not self.literal else ""
        return SchemeError(
            f"step {self.step.name!r}: {self.key}{within}: {message}",
            path=str(self.scheme.path) if self.scheme.path else f"scheme {self.scheme.name!r}",
            line=self.step.line_of(self.key) + offset,
        )

    def template(self, text: str) -> None:
        env = environment()
        try:
            tree = env.parse(text)
            env.compile(tree)
        except TemplateSyntaxError as exc:
            hint = (
                "; a shell `${#...}` starts a Jinja comment: wrap the command in {% raw %}...{% endraw %}"
                if "comment" in (exc.message or "").lower()
                else ""
            )
            raise self.fail(f"template syntax error: {exc.message}{hint}", exc.lineno) from exc
        if self.key == "when" and "{{" not in text and "{%" not in text:
            raise self.fail(
                f'{text!r} is not a template, so it is always true: write "{{{{ {text} }}}}"'
            )
        self.names(tree)
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            self.reference(node)

    def names(self, tree: nodes.Template) -> None:
        unknown = sorted(meta.find_undeclared_variables(tree) - {"params", "steps"})
        if unknown:
            where = next(n.lineno for n in tree.find_all(nodes.Name) if n.name == unknown[0])
            raise self.fail(f"{unknown[0]!r} is not defined; {_SEEN}", where)

    def reference(self, node: nodes.Getattr | nodes.Getitem) -> None:
        """Check ``params.X``, ``steps.X`` and ``steps.X.FIELD`` (also with ``[...]``)."""
        name = _attribute(node)
        base = node.node
        if isinstance(base, nodes.Name) and base.ctx == "load" and name is not None:
            if base.name == "params":
                self.param(name, node.lineno)
            elif base.name == "steps":
                self.ancestor(name, node.lineno)
        elif _attribute(base) is not None and name is not None:
            inner = cast(nodes.Getattr | nodes.Getitem, base)
            if isinstance(inner.node, nodes.Name) and inner.node.name == "steps":
                if name not in STEP_FIELDS:
                    raise self.fail(
                        f"steps.{_attribute(inner)}.{name}: a step's result has "
                        f"{', '.join(STEP_FIELDS)}",
                        node.lineno,
                    )

    def param(self, name: str, lineno: int) -> None:
        if name not in self.scheme.params:
            declared = ", ".join(self.scheme.params) or "none"
            raise self.fail(
                f"params.{name} is not declared; declare it under params: (declared: {declared})",
                lineno,
            )

    def ancestor(self, name: str, lineno: int) -> None:
        names = [step.name for step in self.scheme.steps]
        if name == self.step.name:
            raise self.fail(f"steps.{name} is this step's own result, which it cannot read", lineno)
        if name not in names:
            raise self.fail(
                f"steps.{name}: no step is named {name!r}; known: {', '.join(names)}", lineno
            )
        if name not in ancestors(self.scheme, self.step.name):
            raise self.fail(
                f"steps.{name}: {name!r} is not a step {self.step.name!r} depends on "
                f"(directly or through depends_on), so it may not have run yet; "
                f"add {name!r} to its depends_on",
                lineno,
            )


def _attribute(node: nodes.Node) -> str | None:
    """The name read by ``x.NAME`` or ``x["NAME"]``; None for anything else."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        value: object = node.arg.value
        return value if isinstance(value, str) else None
    return None
