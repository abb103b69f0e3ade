"""Start-up: how long ``gm`` takes to be useful, in milliseconds of wall time.

- ``python -c pass``: the bare interpreter, the floor under every figure here;
- ``gm --help``: the CLI's start-up (its heavy modules are imported lazily);
- ``gm run task.md`` to the first model request: from starting the process to
  the moment a local OpenAI-compatible server (on 127.0.0.1, in this process)
  receives the request. The server answers with a call to ``finish``, so the run
  ends at once.

Times are taken with ``time.perf_counter`` in this process around
``subprocess`` starts; medians of several runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["gm_command", "gm_environ", "startup"]

_FINISH = {
    "id": "bench",
    "object": "chat.completion",
    "created": 0,
    "model": "bench",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "finish", "arguments": '{"summary": "ok"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def gm_command() -> list[str]:
    """The argv prefix a user types: the ``gm`` script beside this interpreter, else
    ``python -m gm_agent``. Run it with :func:`gm_environ`."""
    script = Path(sys.executable).parent / "gm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gm_agent"]


def gm_environ() -> dict[str, str]:
    """A clean environment for a ``gm`` process that runs the gm_agent this harness
    imported: ``PYTHONPATH`` names its checkout, which need not be the one installed
    in the interpreter (a git worktree's, say); without it the ``gm`` script would
    import, and the figures would measure, the installed one."""
    import gm_agent

    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "PYTHONPATH": str(Path(gm_agent.__file__).resolve().parent.parent),
    }


@contextmanager
def _model_server(arrivals: list[float]) -> Iterator[str]:
    """A local OpenAI-compatible server that notes when each request arrives
    (``perf_counter``) and answers with ``finish``; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrivals.append(time.perf_counter())
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.dumps(_FINISH).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _wall_ms(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def _first_request_ms(root: Path, url: str, arrivals: list[float]) -> float:
    """Start ``gm run`` in a new workspace under ``root``; ms to its first model request."""
    workspace = Path(tempfile.mkdtemp(dir=root))
    (workspace / "task.md").write_text(f"---\nmodel: {url}#bench\n---\nSay hello.\n")
    seen = len(arrivals)
    started = time.perf_counter()
    process = subprocess.run(
        [*gm_command(), "run", "task.md"],
        cwd=workspace,
        env=gm_environ(),
        capture_output=True,
        check=False,
    )
    if process.returncode != 0 or len(arrivals) == seen:
        raise RuntimeError(f"gm run failed ({process.returncode}): {process.stderr[-500:]!r}")
    return (arrivals[seen] - started) * 1000


def startup(root: Path, repeats: int) -> dict[str, list[float]]:
    """Start-up times; each list holds ``repeats`` samples in ms, the kinds alternating.

    Args:
        root: a scratch directory for the runs' workspaces.
        repeats: samples of each.

    Returns:
        ``{"python -c pass": [...], "gm --help": [...], "gm run to first model request": [...]}``.
    """
    samples: dict[str, list[float]] = {
        "python -c pass": [],
        "gm --help": [],
        "gm run to first model request": [],
    }
    arrivals: list[float] = []
    with _model_server(arrivals) as url:
        for _ in range(repeats):
            samples["python -c pass"].append(_wall_ms([sys.executable, "-c", "pass"]))
            samples["gm --help"].append(_wall_ms([*gm_command(), "--help"], gm_environ()))
            samples["gm run to first model request"].append(_first_request_ms(root, url, arrivals))
    return samples
