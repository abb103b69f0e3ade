"""End to end on real models: SmolLM2 in process, and behind the real llama.cpp server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gm_agent.llm.local import find_model_file
from tests.conftest import REPO, gm

pytestmark = pytest.mark.local_model

HELLO = REPO / "examples" / "hello" / "task.md"


def assert_a_real_run(workspace: Path, printed: list[dict[str, object]]) -> list[dict[str, object]]:
    """The run stopped (ended, or waits at its step budget), ran at least one real tool
    call, and `gm log last --json` holds every event."""
    logged = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    assert logged == printed
    kinds = [e["kind"] for e in logged]
    last = logged[-2]["data"]
    assert kinds[-1] == "checkpoint.saved" and isinstance(last, dict)
    if kinds[-2] == "run.finished":
        assert last["status"] in ("succeeded", "failed")
    else:  # a small model may use every step of its budget: the run waits for a raise
        assert kinds[-2] == "run.status_changed" and last["to"] == "waiting", kinds[-2:]
        assert str(last["reason"]).startswith("budget: max_steps=4 reached")
    called = [e for e in logged if e["kind"] == "tool.called"]
    returned = [e for e in logged if e["kind"] == "tool.returned"]
    assert called and len(returned) == len(called)  # every call was carried out and answered
    responses = [e["data"] for e in logged if e["kind"] == "model.response"]
    assert all(r["usage"]["input_tokens"] > 0 for r in responses)  # type: ignore[index]
    assert len(responses) <= 4  # the task's max_steps
    return logged


def test_the_hello_example_runs_on_the_embedded_local_model(workspace: Path) -> None:
    result = gm("run", str(HELLO), "--json", cwd=workspace, timeout=300)
    assert result.returncode in (0, 1, 3), result.stderr
    logged = assert_a_real_run(workspace, [json.loads(line) for line in result.stdout.splitlines()])
    assert logged[0]["data"]["model"] == "local:smollm2"  # type: ignore[index]
    # In process the model is greedy (temperature 0) and grammar-constrained: its
    # write_file call is valid and really changes the workspace.
    assert "patch.applied" in [e["kind"] for e in logged]
    assert (workspace / "hello.txt").is_file()


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(find_model_file("smollm2", {})),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chat_format",
        "chatml-function-calling",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {server.returncode}")
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            pytest.fail("llama.cpp server did not answer within 60 s")
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_gm_run_through_the_real_llama_cpp_server(workspace: Path, llama_server: str) -> None:
    result = gm(
        "run",
        str(HELLO),
        "--model",
        "openai:smollm2",
        "--json",
        cwd=workspace,
        env={"OPENAI_BASE_URL": llama_server},
        timeout=300,
    )
    assert result.returncode in (0, 1, 3), result.stderr
    logged = assert_a_real_run(workspace, [json.loads(line) for line in result.stdout.splitlines()])
    model_jobs = [
        e["data"] for e in logged if e["kind"] == "job.result" and e["data"]["kind"] == "model"
    ]  # type: ignore[index]
    assert model_jobs and model_jobs[0]["ok"]  # type: ignore[index]
