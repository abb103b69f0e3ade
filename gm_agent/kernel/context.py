"""What the model sees: the system prompt and the conversation, built from the state."""

from __future__ import annotations

from gm_agent.kernel.state import RunState
from gm_agent.llm import Message, ModelRequest, ToolSpec

__all__ = ["SYSTEM_PROMPT", "build_request"]

SYSTEM_PROMPT = """\
You are gm, an autonomous agent working in a project directory ({workspace}).
Do the user's task using the tools. Paths are relative to the project directory.
Check your work (read the file back, run the tests) when that is useful.
When the task is done, call `finish` with a short summary of what you did."""


def build_request(
    state: RunState, tools: tuple[ToolSpec, ...], *, idempotency_key: str | None = None
) -> ModelRequest:
    """The model request for the next step of the run in ``state``."""
    system = SYSTEM_PROMPT.format(workspace=state.workspace)
    if state.instructions:
        system += f"\n\n{state.instructions}"
    messages = [Message(role="system", text=system)]
    for turn in state.conversation:
        match turn.role:
            case "user":
                messages.append(Message(role="user", text=turn.text))
            case "assistant":
                messages.append(
                    Message(
                        role="assistant",
                        text=turn.text,
                        tool_calls=turn.tool_calls,
                        provider_data=turn.provider_data,
                    )
                )
            case "tool":
                messages.append(
                    Message(role="tool", text=turn.text, call_id=turn.call_id, name=turn.name)
                )
    return ModelRequest(messages=tuple(messages), tools=tools, idempotency_key=idempotency_key)
