"""Redacting secrets from what is journaled and shown to the model.

Two kinds of secret are replaced before a tool's output (or a user message) is
journaled, and so before the model can see it:

- known values: the value of every environment variable whose name looks like a
  secret (:func:`gm_agent.jobs.shell.is_secret_name`), 8 characters or longer,
  replaced by ``[redacted: NAME]``;
- common token shapes, replaced by ``[redacted: KIND]`` (the prefixes are the
  providers' published formats: OpenAI ``sk-``, GitHub ``ghp_``/``github_pat_``,
  GitLab ``glpat-``, AWS access key ids ``AKIA``, Slack ``xox?-``, Google API
  keys ``AIza``, and PEM private key blocks).

File contents in patches are never redacted: undo must restore them byte for
byte. Keep secrets in git-ignored files (``.env``), which shell snapshots skip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import JsonValue

from gm_agent.jobs import is_secret_name

__all__ = ["MIN_SECRET_LENGTH", "Redactor"]

MIN_SECRET_LENGTH = 8
"""Shorter values are not treated as secrets (they would redact ordinary words)."""

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)),
    ("openai key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("github token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("gitlab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("aws access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google api key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
)  # fmt: skip


class Redactor:
    """Replaces known secret values and token shapes in text.

    Args:
        environ: the environment gm runs in; secret-looking variables' values are
            the known secrets.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        known = {
            value: name
            for name, value in environ.items()
            if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH
        }
        # Longest first, so a secret that contains another is replaced whole.
        self._known = sorted(known.items(), key=lambda item: -len(item[0]))

    def redact(self, text: str) -> str:
        """``text`` with every known secret value and token shape replaced."""
        for value, name in self._known:
            if value in text:
                text = text.replace(value, f"[redacted: {name}]")
        for kind, pattern in _PATTERNS:
            text = pattern.sub(f"[redacted: {kind}]", text)
        return text

    def redact_json(self, value: JsonValue) -> JsonValue:
        """``value`` (parsed JSON, a webhook's payload) with every string redacted,
        keys included; numbers, booleans and nulls unchanged."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_json(v) for v in value]
        if isinstance(value, dict):
            return {self.redact(k): self.redact_json(v) for k, v in value.items()}
        return value
