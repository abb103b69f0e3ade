"""One exception tree for gm_agent.

Every error gm_agent raises on purpose derives from :class:`GmAgentError`::

    GmAgentError
    ├── UserError                 misuse the user can fix (exit code 2)
    │   ├── ConfigError           gm.toml, environment or --model is wrong
    │   ├── TaskFileError         task.md cannot be read or parsed (names the line)
    │   ├── SchemeError           a scheme or its parameters are invalid (names file and line)
    │   ├── SkillError            a SKILL.md is invalid, or no skill has the name
    │   ├── RunNotFound           a RUN argument matches no run, or several
    │   └── RunLeased             another live process is executing the run
    ├── JournalError              the journal cannot be used
    │   ├── JournalCorrupt        the file is not a readable gm journal
    │   ├── JournalSchemaTooNew   written by a newer gm_agent; refused unmodified
    │   ├── LeaseLost             another process took the run over while we ran it
    │   ├── DuplicateEvent        an event that must be new is already journaled
    │   └── Superseded            someone steered the run since the kernel decided
    ├── ToolError                 a tool call failed; the model sees the message
    │   └── PathOutsideWorkspace  a path escapes the workspace or hits .gm/ .git/
    ├── JobError                  a side effect could not be carried out
    │   └── JobTimeout            one attempt ran past the job's timeout (retryable)
    ├── PatchError                a file change could not be applied
    ├── ModelError                the model could not produce a move
    │   ├── ModelHTTPError        a provider answered with an HTTP error
    │   ├── ModelConnectionError  the provider could not be reached (retryable)
    │   ├── CircuitOpen           a provider failed too often lately: not tried now
    │   └── ScriptExhausted       a scripted model has no move left
    ├── IllegalTransition         a run state change not in the table (a bug)
    └── ReplayDivergence          replay met an event the code would not produce

Errors a model causes (a bad tool argument, a path outside the workspace) are
:class:`ToolError` and are reported back to the model; the run goes on. Errors
in gm_agent itself are raised. Messages name the thing with ``!r`` and say what
to do.

An error worth retrying has ``retryable = True`` and may carry
``retry_after_s`` (seconds the server asked us to wait); the job runner reads
both. ``outage = True`` marks a failure of the provider rather than of the
request (unreachable, overloaded, 5xx, circuit open): a run with fallback
models moves to the next one.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpen",
    "ConfigError",
    "DuplicateEvent",
    "GmAgentError",
    "IllegalTransition",
    "JobError",
    "JobTimeout",
    "JournalCorrupt",
    "JournalError",
    "JournalSchemaTooNew",
    "LeaseLost",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "PatchError",
    "PathOutsideWorkspace",
    "ReplayDivergence",
    "RunLeased",
    "RunNotFound",
    "SchemeError",
    "ScriptExhausted",
    "SkillError",
    "Superseded",
    "TaskFileError",
    "ToolError",
    "UserError",
]


class GmAgentError(Exception):
    """Root of every error gm_agent raises on purpose."""

    retryable: bool = False
    retry_after_s: float | None = None
    outage: bool = False


class UserError(GmAgentError):
    """Misuse the user can fix: bad configuration, bad input, unknown names."""


class ConfigError(UserError):
    """gm.toml, an environment variable or a command-line option is invalid."""


class TaskFileError(UserError):
    """A task file cannot be read or parsed.

    Attributes:
        path: the task file.
        line: 1-based line number in the file where the problem is, if known.
    """

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class SkillError(UserError):
    """A skill cannot be used: its ``SKILL.md`` breaks the agentskills.io format,
    or no skill has the name asked for.

    Attributes:
        path: the ``SKILL.md`` (or folder) at fault, if one is.
        line: 1-based line in that file where the problem is, if known.
        field: the front matter key at fault (``name``, ``description``, ...), if one is.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = f"{path}:{line}: " if path and line is not None else f"{path}: " if path else ""
        key = f"front matter {field!r}: " if field else ""
        super().__init__(f"{where}{key}{message}")
        self.path = path
        self.line = line
        self.field = field


class SchemeError(UserError):
    """A scheme cannot be found, read or validated, its parameters are wrong, or
    one of its templates cannot be rendered.

    Attributes:
        path: the scheme file (or the scheme's name when it has no file), if known.
        line: 1-based line number in the file where the problem is, if known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path and line is not None else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class RunNotFound(UserError):
    """A run reference (id, prefix or ``last``) matches no run, or several."""


class RunLeased(UserError):
    """Another live process holds the run's lease.

    Attributes:
        holder: the lease owner, ``host:pid:nonce``.
        expires_at: when the lease runs out unless renewed (RFC 3339 UTC).
    """

    def __init__(self, run_id: str, holder: str, expires_at: str) -> None:
        super().__init__(
            f"run {run_id} is being executed by {holder} (lease renewed until {expires_at}); "
            f"watch it with `gm log {run_id} --follow`, or stop that process first"
        )
        self.holder = holder
        self.expires_at = expires_at


class JournalError(GmAgentError):
    """The journal cannot be opened, read or written."""


class JournalCorrupt(JournalError):
    """The journal file is not a readable gm_agent journal. It is left untouched.

    ``seq`` names the event that cannot be read, when one event is the problem.
    """

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class JournalSchemaTooNew(JournalError):
    """The journal was written by a newer gm_agent. It is left untouched.

    Attributes:
        found: the file's schema version (``PRAGMA user_version``).
        supported: the newest schema version this gm_agent knows.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"{path!r} has journal schema version {found}, but this gm_agent only knows "
            f"versions up to {supported}; upgrade gm_agent to read it (the file was not modified)"
        )
        self.found = found
        self.supported = supported


class LeaseLost(JournalError):
    """Our lease on a run expired and another process took it; we must stop at once."""


class DuplicateEvent(JournalError):
    """An event that had to be new (a webhook delivery, a schedule's firing) is in
    the journal already; nothing of its batch was committed.

    ``existing`` is the stored event.
    """

    def __init__(self, message: str, existing: object = None) -> None:
        super().__init__(message)
        self.existing = existing


class Superseded(JournalError):
    """A decision was not committed: a person steered the run (a message, an
    interrupt, a cancel, an answer) after the kernel last looked. The kernel
    takes the new events in and decides again; nothing was written."""


class ToolError(GmAgentError):
    """A tool call failed in a way the model caused; the message is shown to the model."""


class PathOutsideWorkspace(ToolError):
    """A tool path resolves outside the workspace, or into ``.gm/`` or ``.git/`` for a write."""


class JobError(GmAgentError):
    """A side effect (a job) could not be carried out by gm_agent itself."""


class JobTimeout(JobError):
    """One attempt of a job ran past its timeout and was stopped. Retryable."""

    retryable = True
    outage = True


class PatchError(GmAgentError):
    """A file change (a patch) could not be applied."""


class ModelError(GmAgentError):
    """The model could not produce a move: unreachable, misconfigured or malformed reply."""


class ModelHTTPError(ModelError):
    """A provider answered with an HTTP error status.

    Attributes:
        status: the HTTP status code.
        body: the response body as text (truncated to 2,000 characters).
    """

    RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
    """Statuses worth retrying: timeouts, rate limits, server errors, and Anthropic's 529 overload."""

    def __init__(
        self, provider: str, status: int, body: str, retry_after_s: float | None = None
    ) -> None:
        self.status = status
        self.body = body[:2000]
        self.retryable = status in self.RETRYABLE_STATUSES
        self.outage = self.retryable
        self.retry_after_s = retry_after_s
        hint = {
            401: "check the API key",
            403: "check the API key's permissions",
            404: "check the model name and base URL",
            429: "rate limited; wait or lower the request rate",
        }.get(status, "see the provider's message above")
        super().__init__(f"{provider} answered HTTP {status}: {self.body}; {hint}")


class ModelConnectionError(ModelError):
    """The provider could not be reached or did not answer in time. Retryable."""

    retryable = True
    outage = True


class CircuitOpen(ModelError):
    """A provider failed several times in a row lately, so it is not asked now
    (the circuit breaker pattern; M. Nygard, "Release It!", 2007). Not retried
    within the job: a run with fallback models moves to the next one."""

    outage = True


class ScriptExhausted(ModelError):
    """A scripted model was asked for more moves than its file holds."""


class IllegalTransition(GmAgentError):
    """A run status change that the transition table does not allow. Always a bug."""


class ReplayDivergence(GmAgentError):
    """Replaying a run produced something different from what the journal holds."""
