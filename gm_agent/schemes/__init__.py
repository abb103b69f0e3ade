"""Schemes: strict procedures in YAML, their validation and their parameters.

A scheme names typed ``params`` and ``steps``; each step has one body
(``shell``, ``tool``, ``llm``, ``agent`` or ``scheme``), may depend on others
(``depends_on``, a DAG), run only ``when`` a condition holds, ``retry`` and time
out. Templates (Jinja2, sandboxed) read ``{{ params.X }}`` and
``{{ steps.NAME.output }}``. See ``docs/schemes.md``.

::

    scheme = find_scheme(workspace, "test-and-fix")     # or load_scheme(path)
    params = bind_params(scheme, {"test_cmd": "pytest -x"})
    for level in topological_order(scheme):             # [["test"], ["fix"], ["retest"]]
        ...

Errors are :class:`gm_agent.errors.SchemeError`, naming the file and line.
"""

from __future__ import annotations

from gm_agent.schemes._discover import (
    SchemeEntry,
    SchemeSource,
    check_calls,
    check_scheme,
    find_scheme,
    list_schemes,
    scheme_dirs,
)
from gm_agent.schemes._graph import ancestors, topological_order
from gm_agent.schemes._load import check_tool_args, check_tools, load_scheme, parse_scheme
from gm_agent.schemes._model import Param, ParamType, Scheme
from gm_agent.schemes._params import bind_params, check_call
from gm_agent.schemes._render import FALSE_WORDS, StepView, condition, render
from gm_agent.schemes._steps import (
    AgentCall,
    LlmCall,
    OnError,
    Retry,
    SchemeCall,
    Step,
    StepKind,
    ToolCall,
    templates_of,
)

__all__ = [
    "FALSE_WORDS",
    "AgentCall",
    "LlmCall",
    "OnError",
    "Param",
    "ParamType",
    "Retry",
    "Scheme",
    "SchemeCall",
    "SchemeEntry",
    "SchemeSource",
    "Step",
    "StepKind",
    "StepView",
    "ToolCall",
    "ancestors",
    "bind_params",
    "check_call",
    "check_calls",
    "check_scheme",
    "check_tool_args",
    "check_tools",
    "condition",
    "find_scheme",
    "list_schemes",
    "load_scheme",
    "parse_scheme",
    "render",
    "scheme_dirs",
    "templates_of",
    "topological_order",
]
