"""``gm doctor``: what works here: the sandbox, the journal, the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio.to_thread
import httpx

from gm_agent.errors import GmAgentError
from gm_agent.jobs import probe_sandbox
from gm_agent.journal import LATEST_VERSION, Journal
from gm_agent.llm import OpenAIChatModel, default_model_name, make_model
from gm_agent.settings import Settings, load_settings

__all__ = ["Check", "diagnose"]

REACH_TIMEOUT_S = 3.0
"""How long ``gm doctor`` waits for a model server to answer, in seconds."""


@dataclass(frozen=True)
class Check:
    """One line of ``gm doctor``: what was checked, how it went, and the details."""

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str


async def diagnose(workspace: Path, environ: Mapping[str, str]) -> list[Check]:
    """Check the sandbox, the journal and the default model of ``workspace``.

    Never writes anything: the journal is opened read-only.
    """
    try:
        settings = load_settings(workspace, environ)
    except GmAgentError as exc:
        return [Check("settings", "fail", str(exc))]
    return [
        await _sandbox(settings),
        await _journal(settings),
        await _model(settings, environ),
    ]


async def _sandbox(settings: Settings) -> Check:
    wanted = settings.sandbox
    sandbox = await anyio.to_thread.run_sync(
        lambda: probe_sandbox(settings.workspace, wanted=wanted.backend, network=wanted.network)
    )
    if sandbox.effective:
        return Check("sandbox", "ok", sandbox.detail)
    status = "fail" if wanted.backend in ("bubblewrap", "landlock") else "warn"
    return Check("sandbox", status, f"none: shell commands run unconfined ({sandbox.detail})")


async def _journal(settings: Settings) -> Check:
    path = settings.journal_path
    if not path.exists():
        return Check("journal", "ok", f"none yet at {str(path)!r}; `gm run` creates it")
    try:
        async with await Journal.open(path, read_only=True) as journal:
            verdict = await journal.integrity()
            runs = await journal.list_runs()
    except GmAgentError as exc:
        return Check("journal", "fail", str(exc))
    if verdict != "ok":
        return Check("journal", "fail", f"SQLite quick_check: {verdict}")
    size = path.stat().st_size
    detail = f"{str(path)!r}: schema {LATEST_VERSION}, {len(runs)} runs, {size:,} bytes, intact"
    return Check("journal", "ok", detail)


async def _model(settings: Settings, environ: Mapping[str, str]) -> Check:
    try:
        name = settings.model or default_model_name(environ)
        model = make_model(name, settings, environ, base_dir=settings.workspace)
    except GmAgentError as exc:
        return Check("model", "fail", str(exc))
    try:
        if not isinstance(model, OpenAIChatModel):
            return Check("model", "ok", f"{name}: ready")
        try:
            async with httpx.AsyncClient(timeout=REACH_TIMEOUT_S) as client:
                response = await client.get(f"{model.base_url}/models")
        except httpx.HTTPError as exc:
            return Check("model", "fail", f"{name}: {model.base_url} cannot be reached ({exc})")
        return Check(
            "model", "ok", f"{name}: {model.base_url} answers (HTTP {response.status_code})"
        )
    finally:
        await model.aclose()
