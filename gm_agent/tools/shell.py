"""The run_shell and finish tools."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gm_agent.tools._registry import Finish, Outcome, ShellCommand, Tool, ToolContext

__all__ = ["CONTROL_TOOLS", "SHELL_TOOLS"]


class RunShellArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1, description="shell command line, run with /bin/sh -c")
    timeout_s: float | None = Field(default=None, gt=0, description="seconds before it is killed")


def run_shell(context: ToolContext, args: RunShellArgs) -> Outcome:
    limits = context.limits
    timeout = min(args.timeout_s or limits.shell_timeout_s, limits.shell_max_timeout_s)
    return ShellCommand(args.command, timeout)


class FinishArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(description="what was done, for the user")


def finish(context: ToolContext, args: FinishArgs) -> Outcome:
    return Finish(args.summary)


SHELL_TOOLS = (
    Tool(
        "run_shell",
        "Run a shell command in the project directory; returns its exit code and output.",
        RunShellArgs,
        run_shell,
    ),
)
CONTROL_TOOLS = (
    Tool("finish", "End the task with a summary of what was done.", FinishArgs, finish),
)
