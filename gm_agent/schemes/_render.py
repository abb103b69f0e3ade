"""Filling in a step's templates from the parameters and the earlier steps' results.

Templates are Jinja2 (https://jinja.palletsprojects.com/en/3.1.x/templates/),
rendered in its sandbox (no attribute starting with ``_``, no unsafe calls) with
``StrictUndefined``: a name, parameter or step result that does not exist is an
error, never an empty string. One filter is added: ``shquote`` quotes a value
for ``/bin/sh`` (``shlex.quote``).

Jinja2 (about 15 ms to import) is imported when a template is first rendered or
checked, so a run without a scheme never imports it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

from gm_agent.errors import SchemeError
from gm_agent.schemes._steps import Step

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["FALSE_WORDS", "STEP_FIELDS", "StepView", "condition", "environment", "render"]

FALSE_WORDS = frozenset({"", "false", "False", "0", "none", "None"})
"""What a ``when`` condition may render to (spaces around it ignored) to be false."""

STEP_FIELDS = ("output", "failed", "ok", "skipped", "exit_code", "value")
"""What a template may read of an earlier step: ``steps.NAME.<field>``."""


@dataclass(frozen=True)
class StepView:
    """What templates see of a finished step as ``steps.NAME``.

    Attributes:
        output: its text: a command's output, a tool's result, an agent's
            summary, a model's answer.
        failed: it ran and failed (after its retries).
        skipped: it did not run (its ``when`` was false, or a step it depends on
            did not succeed).
        exit_code: a shell step's exit status; None for other steps.
        value: an ``llm`` step's answer parsed as JSON; None for other steps.
    """

    output: str = ""
    failed: bool = False
    skipped: bool = False
    exit_code: int | None = None
    value: JsonValue = None

    @property
    def ok(self) -> bool:
        """It ran and succeeded: neither failed nor skipped."""
        return not self.failed and not self.skipped


def environment() -> SandboxedEnvironment:
    """The Jinja2 environment schemes are parsed and rendered with."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined
    )
    env.filters["shquote"] = _shquote  # pyright: ignore[reportUnknownMemberType]
    return env


def _shquote(value: object) -> str:
    return shlex.quote(str(value))


def render(
    template: str,
    params: Mapping[str, object],
    steps: Mapping[str, StepView],
    *,
    step: Step | None = None,
    key: str | None = None,
    path: Path | None = None,
) -> str:
    """``template`` filled in: ``{{ params.X }}`` and ``{{ steps.NAME.output }}``.

    Args:
        template: Jinja2 text (a step's ``shell``, ``when``, ``agent.task``, ...).
        params: the bound parameters (see ``bind_params``).
        steps: the results of the steps that ran or were skipped so far.
        step: the step the template belongs to, named in errors.
        key: which of its keys it is (dotted, like ``"agent.task"``), for the line.
        path: the scheme file, named in errors.

    Raises:
        SchemeError: the template cannot be rendered (an undefined name, a
            missing step result, a syntax error, an unsafe operation).
    """
    from jinja2 import TemplateError

    try:
        return environment().from_string(template).render(params=params, steps=steps)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        what = f"step {step.name!r}: " if step else ""
        field = f"{key}: " if key else ""
        line = (step.line_of(key) if key else step.line) if step else None
        raise SchemeError(
            f"{what}{field}cannot render the template: {exc}; templates see "
            f"params.NAME and steps.NAME.{{{','.join(STEP_FIELDS)}}} of the steps it depends on",
            path=str(path) if path else None,
            line=line or None,
        ) from exc


def condition(
    template: str,
    params: Mapping[str, object],
    steps: Mapping[str, StepView],
    *,
    step: Step | None = None,
    key: str | None = "when",
    path: Path | None = None,
) -> bool:
    """Whether a ``when`` holds: ``template`` rendered (see :func:`render`), with
    spaces around it stripped, is true unless it is one of :data:`FALSE_WORDS`
    (``""``, ``false``, ``False``, ``0``, ``none``, ``None``).

    So ``{{ steps.test.failed }}`` is true when the test step failed, and
    ``{% if params.n > 3 %}yes{% endif %}`` when ``n`` is above 3.

    Raises:
        SchemeError: the template cannot be rendered.
    """
    text = render(template, params, steps, step=step, key=key, path=path)
    return text.strip() not in FALSE_WORDS
