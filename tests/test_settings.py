"""gm.toml and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gm_agent.errors import ConfigError
from gm_agent.settings import load_settings


def test_defaults_without_gm_toml(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {})
    assert (settings.model, settings.max_steps, settings.journal.durability) == (None, 30, "full")
    assert settings.journal_path == tmp_path / ".gm" / "journal.db"


def test_gm_toml_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "gm.toml").write_text(
        'model = "openai:gpt-4.1"\nmax_steps = 12\n[providers.openai]\nbase_url = "http://a/v1"\n'
        "[tools]\nshell_timeout_s = 5\n"
    )
    settings = load_settings(tmp_path, {})
    assert (settings.model, settings.max_steps, settings.base_url("openai")) == (
        "openai:gpt-4.1",
        12,
        "http://a/v1",
    )
    assert settings.tools.shell_timeout_s == 5
    overridden = load_settings(
        tmp_path, {"GM_MODEL": "local:smollm2", "OPENAI_BASE_URL": "http://b/v1"}
    )
    assert (overridden.model, overridden.base_url("openai")) == ("local:smollm2", "http://b/v1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_steps = 0\n", "max_steps"),
        ("colour = 'red'\n", "colour"),
        ("model = \n", "not valid TOML"),
    ],
)
def test_a_bad_gm_toml_names_the_key(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "gm.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, {})
