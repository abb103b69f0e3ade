"""Settings: ``gm.toml`` in the workspace, then the environment, then defaults.

A task's front matter and command-line options override these per run (see
:mod:`gm_agent.kernel`). Example ``gm.toml``::

    model = "openai:gpt-4.1"
    max_steps = 30

    [journal]
    durability = "full"          # full | fast

    [checkpoint]
    every_steps = 10             # and/or
    every_s = 60

    [sandbox]
    backend = "auto"             # auto | bubblewrap | landlock | none
    network = false

    [providers.openai]
    base_url = "http://127.0.0.1:8080/v1"

    [tools]
    shell_timeout_s = 120

    [context]
    max_bytes = 32768            # project context files (AGENTS.md, ...)
    window_tokens = 128000       # default: the model's own
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from gm_agent.errors import ConfigError

__all__ = [
    "AgentSettings",
    "BudgetSettings",
    "CheckpointSettings",
    "ContextSettings",
    "FilesTrigger",
    "JournalSettings",
    "PolicyAction",
    "PolicyRule",
    "PolicySettings",
    "ProviderSettings",
    "SandboxSettings",
    "ScheduleTrigger",
    "ServeSettings",
    "Settings",
    "ToolSettings",
    "Trigger",
    "WebhookTrigger",
    "load_settings",
    "remember_approval",
]

GM_DIR = ".gm"
JOURNAL_FILE = "journal.db"
APPROVALS_FILE = "policy.toml"
"""In ``.gm/``: the rule keys approved ``--always`` for the project (written by gm)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JournalSettings(_Section):
    """``[journal]``: ``durability`` is ``full`` (synchronous=FULL) or ``fast`` (NORMAL)."""

    durability: Literal["full", "fast"] = "full"


class CheckpointSettings(_Section):
    """``[checkpoint]``: save a run's state at a safe point every ``every_steps`` steps
    or ``every_s`` seconds, whichever comes first (and always on pause and exit)."""

    every_steps: int = Field(default=10, ge=1)
    every_s: float = Field(default=60.0, gt=0)


class SandboxSettings(_Section):
    """``[sandbox]``: how shell commands are confined (see docs/sandbox.md).

    ``backend``: ``auto`` (bubblewrap when it works here, else Landlock, else
    none), ``bubblewrap`` or ``landlock`` (that one or refuse to run commands),
    or ``none``. ``network``: let commands reach the network. ``max_file_bytes`` and ``max_memory_bytes`` are rlimits
    (RLIMIT_FSIZE, RLIMIT_AS) in bytes; ``max_memory_bytes = 0`` means no limit.
    """

    backend: Literal["auto", "bubblewrap", "landlock", "none"] = "auto"
    network: bool = False
    max_file_bytes: int = Field(default=1 << 30, ge=1 << 20)
    max_memory_bytes: int = Field(default=0, ge=0)


PolicyAction = Literal["allow", "ask", "deny"]


class PolicyRule(_Section):
    """One ``[[policy.rules]]`` entry (or one item of a task's ``policy: rules:``).

    ``tool`` is a tool name or ``*``. ``match`` is a glob (``fnmatch``: ``*``
    matches anything, spaces and slashes included) on each command of a
    ``run_shell`` command line (pipelines, ``&&``/``||``/``;`` chains and
    ``$(...)`` are split into commands), or on the ``path`` of a file tool.
    ``must_match`` and ``must_not_match`` are examples checked when the rule loads.
    ``network = true`` on an ``allow`` or ``ask`` rule lets the command lines it
    matches reach the network from the sandbox.
    """

    tool: str = Field(min_length=1)
    match: str = "*"
    action: PolicyAction
    network: bool = False
    must_match: tuple[str, ...] = ()
    must_not_match: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``tool:match``: how an approval ``--always`` names the rule it remembers."""
        return f"{self.tool}:{self.match}"

    @model_validator(mode="after")
    def _examples_hold(self) -> PolicyRule:
        wrong = [e for e in self.must_match if not fnmatch.fnmatchcase(e, self.match)]
        wrong += [e for e in self.must_not_match if fnmatch.fnmatchcase(e, self.match)]
        if wrong:
            raise ValueError(
                f"rule {self.key!r}: its examples do not hold for {wrong!r} "
                "(must_match must match the glob, must_not_match must not)"
            )
        return self


class PolicySettings(_Section):
    """``[policy]``: ``rules`` decide tool calls from their arguments (deny wins over
    ask, ask over allow); ``approved`` holds the rule keys approved ``--always`` for
    the project (kept by gm in ``.gm/policy.toml``)."""

    rules: tuple[PolicyRule, ...] = ()
    approved: tuple[str, ...] = ()


class BudgetSettings(_Section):
    """``[budget]`` (and a task's ``budget:``): limits a run checks before each model
    request, besides ``max_steps``. Tokens as the provider counts them; seconds of
    wall time since the run was created. ``None``: no limit. A run that reaches one
    waits (``waiting``, reason ``budget``) until resumed with a higher limit."""

    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    max_wall_s: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)
    """US dollars over the run's priced model responses (:mod:`gm_agent.llm.prices`)."""


class ProviderSettings(_Section):
    """``[providers.NAME]``: where an OpenAI-compatible provider lives."""

    base_url: str | None = None


class ToolSettings(_Section):
    """``[tools]``: limits of the built-in tools (seconds and bytes)."""

    shell_timeout_s: float = Field(default=120.0, gt=0)
    shell_max_timeout_s: float = Field(default=1800.0, gt=0)
    shell_output_cap_bytes: int = Field(default=32_000, ge=1000)
    read_cap_bytes: int = Field(default=256_000, ge=1000)


CONTEXT_FILE_NAMES = ("AGENTS.md", "CLAUDE.md", "GEMINI.md", "GM.md")
"""Project context files, read in this order in each directory: the names Codex,
Claude Code and Gemini CLI read, then gm's own (so ``GM.md`` has the last word)."""


class ContextSettings(_Section):
    """``[context]``: what the model sees besides the conversation.

    Attributes:
        files: project context file names looked for in every directory from the
            workspace root down to the working directory.
        max_bytes: cap on the project context, in bytes (32 KiB, Codex's
            ``project_doc_max_bytes`` default); the farthest files are cut first.
            0 reads none.
        window_tokens: the model's context window in tokens; by default the
            model's own figure (the local model's ``n_ctx``, genai-prices' table
            for the big providers), else 32,768.
        compact_at: compact older turns once a request is estimated to fill this
            share of the window.
    """

    files: tuple[str, ...] = CONTEXT_FILE_NAMES
    max_bytes: int = Field(default=32_768, ge=0)
    window_tokens: int | None = Field(default=None, ge=1000)
    compact_at: float = Field(default=0.8, gt=0.2, le=1.0)


class AgentSettings(_Section):
    """``[agents]``: child runs a run starts with ``spawn_agent`` (see docs/agents.md).

    Attributes:
        max_concurrent: children one run executes at once; more wait their turn.
        default_steps: a child's step budget when ``spawn_agent`` gives none (it
            is taken from the parent's remaining steps, and never more than them).
    """

    max_concurrent: int = Field(default=4, ge=1)
    default_steps: int = Field(default=10, ge=1)


class ServeSettings(_Section):
    """``[serve]``: the ``gm serve`` daemon.

    Attributes:
        host, port: where webhooks are received (127.0.0.1 unless configured).
        max_body_bytes: the largest webhook body accepted, in bytes (GitHub caps
            its payloads at 25 MB; most are a few KB).
        max_runs: runs the daemon executes at once, over all triggers.
        orphan_check_s: seconds between looks for runs whose lease expired.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_runs: int = Field(default=4, ge=1)
    orphan_check_s: float = Field(default=10.0, gt=0)


_TRIGGER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Trigger(_Section):
    """What every trigger has: a name, the task (or scheme) it runs, and how it runs it.

    ``scheme`` (a scheme's name, instead of ``task``) runs that scheme with
    ``params`` (``-p`` values: strings are converted to the declared types).
    ``approvals``: ``stop`` (the default; unattended, a needed approval stops the
    run as waiting) or ``yes`` (approve everything the rules ask about).
    ``max_concurrent``: runs of this trigger at once; a firing past it is skipped.
    """

    name: str = Field(pattern=_TRIGGER_NAME)
    task: str = ""
    scheme: str | None = Field(default=None, min_length=1)
    params: dict[str, JsonValue] = Field(default_factory=dict[str, JsonValue])

    @model_validator(mode="after")
    def _task_or_scheme(self) -> Self:
        if bool(self.task) == bool(self.scheme):
            raise ValueError(
                "a trigger names either a task (task = ...) or a scheme (scheme = ...)"
            )
        if self.params and not self.scheme:
            raise ValueError("params are for a scheme trigger (scheme = ...)")
        return self

    model: str | None = None
    approvals: Literal["stop", "yes"] = "stop"
    max_concurrent: int = Field(default=1, ge=1)


class WebhookTrigger(_Trigger):
    """``on = "webhook"``: a POST to ``path`` signed with the secret in ``secret_env``,
    in GitHub's format (``X-Hub-Signature-256``) or Standard Webhooks'."""

    on: Literal["webhook"]
    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    format: Literal["github", "standard"] = "github"
    secret_env: str = Field(min_length=1)
    events: tuple[str, ...] = ()
    """Which deliveries start a run: event names (``pull_request``) or event and
    action (``pull_request.opened``); empty takes every event but GitHub's ``ping``."""


class FilesTrigger(_Trigger):
    """``on = "files"``: a burst of changes to files matching ``paths`` (gitignore-style
    globs relative to the workspace), settled for ``debounce_ms`` milliseconds."""

    on: Literal["files"]
    paths: tuple[str, ...] = Field(min_length=1)
    debounce_ms: int = Field(default=500, ge=1)


class ScheduleTrigger(_Trigger):
    """``on = "schedule"``: a 5-field ``cron`` expression or an interval ``every``
    (``"30s"``, ``"5m"``, ``"2h"``, ``"1d"``), in ``timezone`` (IANA name).

    ``missed``: what to do with firings missed while gm serve was down (or late by
    more than ``grace_s`` seconds): ``skip`` them, run ``once`` for all of them, or
    run ``all`` of those within ``grace_s`` of now.
    """

    on: Literal["schedule"]
    cron: str | None = None
    every: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?\s*(s|m|h|d)$")
    timezone: str = "UTC"
    missed: Literal["skip", "once", "all"] = "once"
    grace_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _one_schedule(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of `cron` and `every`")
        if self.every is not None and float(self.every.rstrip("smhd ")) <= 0:
            raise ValueError(f"the interval {self.every!r} must be longer than 0")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if self.cron is not None:
            from apscheduler.triggers.cron import (  # pyright: ignore[reportMissingTypeStubs]
                CronTrigger,
            )

            try:
                CronTrigger.from_crontab(self.cron, timezone=self.timezone)  # pyright: ignore[reportUnknownMemberType]
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        return self


Trigger = Annotated[WebhookTrigger | FilesTrigger | ScheduleTrigger, Field(discriminator="on")]
"""One ``[[triggers]]`` entry (or a task's ``on:``), chosen by its ``on`` key."""


class Settings(_Section):
    """Everything configurable about a workspace.

    Attributes:
        workspace: the project directory; all state is in ``workspace/.gm/``.
        model: the default model (``provider:model``), or ``None`` for the built-in choice.
        max_steps: the default step budget of a run.
    """

    workspace: Path
    model: str | None = None
    models: tuple[str, ...] = ()
    """Models in order of preference: the first is the default model, the rest
    are where a run moves when a provider fails (``models = ["anthropic:...",
    "openai:...", "local:smollm2"]``)."""
    max_steps: int = Field(default=30, ge=1)
    model_timeout_s: float = Field(default=600.0, gt=0)
    """Seconds one model request may take before it is stopped and retried."""
    journal: JournalSettings = JournalSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    sandbox: SandboxSettings = SandboxSettings()
    policy: PolicySettings = PolicySettings()
    budget: BudgetSettings = BudgetSettings()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    tools: ToolSettings = ToolSettings()
    context: ContextSettings = ContextSettings()
    serve: ServeSettings = ServeSettings()
    agents: AgentSettings = AgentSettings()
    triggers: tuple[Trigger, ...] = ()

    @model_validator(mode="after")
    def _unique_triggers(self) -> Settings:
        names = [t.name for t in self.triggers]
        paths = [t.path for t in self.triggers if isinstance(t, WebhookTrigger)]
        for label, values in (("name", names), ("webhook path", paths)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"two triggers have the same {label}: {', '.join(repeated)}")
        return self

    @property
    def journal_path(self) -> Path:
        """``<workspace>/.gm/journal.db``."""
        return self.workspace / GM_DIR / JOURNAL_FILE

    def base_url(self, provider: str) -> str | None:
        """The configured base URL of ``provider``, if any."""
        found = self.providers.get(provider)
        return found.base_url if found else None


_ENV_BASE_URLS = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GEMINI_BASE_URL",
    "ollama": "OLLAMA_BASE_URL",
}


def load_settings(workspace: Path, environ: Mapping[str, str]) -> Settings:
    """Read ``workspace/gm.toml`` (if present) and apply the environment over it.

    Environment: ``GM_MODEL`` (model), ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``,
    ``GEMINI_BASE_URL``, ``OLLAMA_BASE_URL``.

    Raises:
        ConfigError: gm.toml is not valid TOML or has an unknown or invalid key
            (the message names the key).
    """
    path = workspace / "gm.toml"
    raw: dict[str, object] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate({**raw, "workspace": workspace})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{str(path)!r}: {problems}") from exc
    approved = _project_approvals(workspace / GM_DIR / APPROVALS_FILE)
    if approved:
        policy = settings.policy.model_copy(
            update={"approved": (*settings.policy.approved, *approved)}
        )
        settings = settings.model_copy(update={"policy": policy})
    providers = dict(settings.providers)
    for provider, variable in _ENV_BASE_URLS.items():
        if environ.get(variable):
            providers[provider] = ProviderSettings(base_url=environ[variable])
    return settings.model_copy(
        update={"model": environ.get("GM_MODEL") or settings.model, "providers": providers}
    )


def _project_approvals(path: Path) -> tuple[str, ...]:
    """The ``approved`` list of ``.gm/policy.toml`` (empty when there is none).

    Raises:
        ConfigError: the file is not valid TOML or ``approved`` is not a list of strings.
    """
    if not path.is_file():
        return ()
    try:
        approved: object = tomllib.loads(path.read_text(encoding="utf-8")).get("approved", [])
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {exc}") from exc
    keys = cast("list[object]", approved) if isinstance(approved, list) else None
    if keys is None or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{str(path)!r}: approved must be a list of rule keys")
    return tuple(str(k) for k in keys)


def remember_approval(workspace: Path, key: str) -> None:
    """Add ``key`` to the project's approvals in ``.gm/policy.toml`` (``gm approve --always project``)."""
    path = workspace / GM_DIR / APPROVALS_FILE
    keys = [*_project_approvals(path)]
    if key in keys:
        return
    keys.append(key)
    lines = [
        "# Written by `gm approve --always project`: rule keys approved for this project.",
        "approved = [",
        *(f"    {json.dumps(k)}," for k in keys),
        "]",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
