"""Tools the model can call, and the registry of built-in ones (see ``docs/tools.md``)."""

from __future__ import annotations

from gm_agent.tools._join import FAILURE_POLICIES, FailurePolicy, JoinPolicy, parse_policy
from gm_agent.tools._paths import PROTECTED_DIRS, resolve_in_workspace
from gm_agent.tools._registry import (
    FileWrite,
    Finish,
    Outcome,
    Reply,
    ShellCommand,
    SpawnAgent,
    Tool,
    ToolContext,
    ToolRegistry,
    WaitAgents,
)
from gm_agent.tools.agents import AGENT_TOOLS
from gm_agent.tools.files import FILE_TOOLS
from gm_agent.tools.shell import CONTROL_TOOLS, SHELL_TOOLS
from gm_agent.tools.skills import SKILL_TOOLS

__all__ = [
    "FAILURE_POLICIES",
    "PROTECTED_DIRS",
    "FailurePolicy",
    "FileWrite",
    "Finish",
    "JoinPolicy",
    "Outcome",
    "Reply",
    "ShellCommand",
    "SpawnAgent",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "WaitAgents",
    "builtin_tools",
    "parse_policy",
    "resolve_in_workspace",
]


def builtin_tools() -> ToolRegistry:
    """A registry with gm's built-in tools, registered like any third party's would be."""
    return ToolRegistry([*FILE_TOOLS, *SHELL_TOOLS, *SKILL_TOOLS, *AGENT_TOOLS, *CONTROL_TOOLS])
