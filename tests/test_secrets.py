"""Secrets never reach the journal or the model: a planted key is nowhere in the
journal's files after a run that read it, printed it and was told it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gm_agent.policy import Redactor
from tests.conftest import gm
from tests.helpers import JsonProvider, serving, write_script, write_task

PLANTED = "sk-planted-0123456789abcdefghij"
GITHUB = "ghp_" + "A1b2C3d4E5" * 4


def test_known_values_and_token_shapes_are_replaced_and_short_values_are_not() -> None:
    redactor = Redactor({"MY_SERVICE_API_KEY": PLANTED, "HOME_TOKEN": "short", "PATH": "/usr/bin"})
    text = f"key={PLANTED} gh={GITHUB} aws=AKIAABCDEFGHIJKLMNOP token=short path=/usr/bin"
    assert redactor.redact(text) == (
        "key=[redacted: MY_SERVICE_API_KEY] gh=[redacted: github token] "
        "aws=[redacted: aws access key id] token=short path=/usr/bin"
    )
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    assert redactor.redact(f"x\n{pem}\ny") == "x\n[redacted: private key]\ny"


def test_a_planted_key_is_nowhere_in_the_journal(workspace: Path) -> None:
    (workspace / ".gitignore").write_text(".env\n")
    (workspace / ".env").write_text(f"SERVICE_KEY={PLANTED}\nGH={GITHUB}\n")
    write_script(
        workspace / "moves.yaml",
        [
            {"tool_calls": [{"name": "read_file", "args": {"path": ".env"}}]},
            {"tool_calls": [{"name": "run_shell", "args": {"command": "cat .env; env"}}]},
            {"finish": "read the keys"},
        ],
    )
    task = write_task(  # outside the workspace: a workspace file is stored as it is, for undo
        workspace.parent / "task.md",
        f"Use the key {PLANTED} to log in.",
        model=f"scripted:{workspace / 'moves.yaml'}",
    )
    result = gm("run", str(task), "--json", cwd=workspace, env={"MY_SERVICE_API_KEY": PLANTED})
    assert result.returncode == 0, result.stderr
    outputs = [
        json.loads(line)["data"]
        for line in result.stdout.splitlines()
        if json.loads(line)["kind"] in ("tool.returned", "user.message")
    ]
    read, shell = (o["output"] for o in outputs if "output" in o and "SERVICE_KEY" in o["output"])
    assert "SERVICE_KEY=[redacted: MY_SERVICE_API_KEY]" in read
    assert "GH=[redacted: github token]" in read and "[redacted: github token]" in shell
    assert outputs[0]["text"] == "Use the key [redacted: MY_SERVICE_API_KEY] to log in."
    for path in (workspace / ".gm").iterdir():  # the journal, its WAL, everything gm keeps
        data = path.read_bytes()
        assert PLANTED.encode() not in data and GITHUB.encode() not in data, path.name


class _EchoesTheKey(JsonProvider):
    """A provider that refuses the key and quotes it back, as real ones do."""

    def answer(self, sent: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        key = self.headers["Authorization"].removeprefix("Bearer ")
        return 401, {"error": {"message": f"Incorrect API key provided: {key}"}}, {}


def test_a_providers_error_quoting_the_key_is_redacted_before_it_is_journaled(
    workspace: Path,
) -> None:
    task = write_task(workspace / "task.md", "Say hi.", model="openai:gpt-4.1-mini")
    with serving(_EchoesTheKey) as url:
        env = {"OPENAI_API_KEY": PLANTED, "OPENAI_BASE_URL": f"{url}/v1"}
        result = gm("run", str(task), cwd=workspace, env=env)
    assert result.returncode == 1
    assert "Incorrect API key provided: [redacted: OPENAI_API_KEY]" in result.stdout + result.stderr
    for path in (workspace / ".gm").iterdir():
        assert PLANTED.encode() not in path.read_bytes(), path.name


def test_a_json_payload_is_redacted_in_every_string_and_keeps_its_shape() -> None:
    from gm_agent.policy import Redactor

    redactor = Redactor({"DEPLOY_TOKEN": "tok-0123456789abcdef"})
    payload = {"a": ["x tok-0123456789abcdef", 3, None, True], "tok-0123456789abcdef": {"n": 1.5}}
    assert redactor.redact_json(payload) == {
        "a": ["x [redacted: DEPLOY_TOKEN]", 3, None, True],
        "[redacted: DEPLOY_TOKEN]": {"n": 1.5},
    }
