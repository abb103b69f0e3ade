"""``spawn_agent`` and ``wait_agents``: a run delegates work to child runs.

Both only *propose*: the kernel creates the child run (a journaled job, so a
crash never starts it twice), runs it next to the parent, and joins a group of
children by a policy (``gm_agent/kernel/_join.py``; see ``docs/agents.md``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gm_agent.tools._join import FailurePolicy, parse_policy
from gm_agent.tools._registry import Outcome, SpawnAgent, Tool, ToolContext, WaitAgents

__all__ = ["AGENT_TOOLS"]


class SpawnAgentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="what the child run must do, self-contained")
    tools: list[str] | None = Field(
        default=None, description="the tools it may use (a subset of yours; default: yours)"
    )
    model: str | None = Field(default=None, description="provider:model (default: yours)")
    max_steps: int | None = Field(
        default=None, ge=1, description="its step budget, taken from your remaining steps"
    )
    read_only: bool = Field(default=False, description="true: it may only read files")
    group: str = Field(default="default", min_length=1, description="the group wait_agents joins")


def spawn_agent(context: ToolContext, args: SpawnAgentArgs) -> Outcome:
    return SpawnAgent(
        task=args.task,
        tools=tuple(args.tools) if args.tools is not None else None,
        model=args.model,
        max_steps=args.max_steps,
        read_only=args.read_only,
        group=args.group,
    )


class WaitAgentsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: str = Field(default="default", min_length=1, description="the group to wait for")
    policy: str = Field(
        default="wait_all", description="wait_all, wait_any or quorum(N): when the wait is over"
    )
    on_failure: FailurePolicy = Field(
        default="ignore",
        description="ignore (report it) or fail_fast (end the wait, cancel the others)",
    )
    timeout_s: float = Field(
        default=600, gt=0, description="seconds to wait; then the children left are cancelled"
    )


def wait_agents(context: ToolContext, args: WaitAgentsArgs) -> Outcome:
    return WaitAgents(
        group=args.group,
        policy=parse_policy(args.policy),
        on_failure=args.on_failure,
        timeout_s=args.timeout_s,
    )


AGENT_TOOLS = (
    Tool(
        "spawn_agent",
        "Start a child agent run on a self-contained task, with its own tools and step "
        "budget; it runs beside you. Collect its result with wait_agents.",
        SpawnAgentArgs,
        spawn_agent,
    ),
    Tool(
        "wait_agents",
        "Wait for the child runs of a group; returns each child's status, summary and "
        "changed files.",
        WaitAgentsArgs,
        wait_agents,
    ),
)
