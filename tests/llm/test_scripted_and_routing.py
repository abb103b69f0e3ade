"""Scripted models and model names."""

from __future__ import annotations

from pathlib import Path

import pytest

from gm_agent.errors import ConfigError, ScriptExhausted
from gm_agent.llm import Message, ModelRequest, OpenAIChatModel, ScriptedModel, make_model
from gm_agent.settings import load_settings
from tests.helpers import write_script

pytestmark = pytest.mark.anyio


async def test_moves_are_played_by_turn_and_finish_is_a_tool_call(tmp_path: Path) -> None:
    model = ScriptedModel.from_file(
        write_script(
            tmp_path / "m.yaml",
            [{"text": "hi", "tool_calls": [{"name": "list_dir", "args": {}}]}, {"finish": "done"}],
        )
    )
    user = Message(role="user", text="go")
    first = await model.request(ModelRequest(messages=(user,)))
    assert (first.text, [c.name for c in first.tool_calls]) == ("hi", ["list_dir"])
    second = await model.request(
        ModelRequest(messages=(user, Message(role="assistant", text="hi")))
    )
    assert [(c.name, c.args) for c in second.tool_calls] == [("finish", {"summary": "done"})]
    replayed = await model.request(ModelRequest(messages=(user,)))
    assert replayed == first  # the same turn always gets the same move
    with pytest.raises(ScriptExhausted, match="has 2 moves"):
        await model.request(ModelRequest(messages=(user, *[Message(role="assistant")] * 2)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- {text: 1, colour: red}\n", "move 1"),
        ("key: value\n", "YAML list"),
        ("- [unclosed\n", "not valid YAML"),
    ],
)
def test_a_malformed_script_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        ScriptedModel.from_file(tmp_path / "m.yaml")


@pytest.mark.parametrize(
    ("name", "environ", "message"),
    [
        ("gpt-4", {}, "provider:model"),
        ("nosuch:model", {}, "unknown model provider 'nosuch'"),
        ("openai:gpt-4.1", {}, "OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4-5", {}, "ANTHROPIC_API_KEY"),
        ("gemini:gemini-2.5-flash", {}, "GEMINI_API_KEY"),
        ("local:tinyllama", {}, "unknown local model"),
        ("local:smollm2", {"GM_LOCAL_MODEL": "/nonexistent.gguf"}, "GM_LOCAL_MODEL"),
    ],
)
def test_bad_model_names_say_what_to_do(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    environ: dict[str, str],
    message: str,
) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        make_model(name, load_settings(tmp_path, environ), environ, tmp_path)


def test_openai_compatible_endpoints_by_name(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"})
    model = make_model("openai:smollm2", settings, {}, tmp_path)
    assert isinstance(model, OpenAIChatModel) and (model.base_url, model.model) == (
        "http://127.0.0.1:8080/v1",
        "smollm2",
    )
    url = make_model("http://127.0.0.1:9000/v1#qwen3", settings, {}, tmp_path)
    assert isinstance(url, OpenAIChatModel) and (url.base_url, url.model) == (
        "http://127.0.0.1:9000/v1",
        "qwen3",
    )
    ollama = make_model("ollama:qwen3", settings, {}, tmp_path)
    assert isinstance(ollama, OpenAIChatModel) and ollama.base_url == "http://127.0.0.1:11434/v1"
