"""Skills in a run: the model sees the catalogue, loads one with `load_skill`
(journaled), and `gm skills learn` drafts a skill from a run that succeeded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gm_agent.skills import discover_skills, parse_skill
from tests.conftest import gm
from tests.helpers import write_script, write_task
from tests.skills.test_skills import write_skill

pytestmark = pytest.mark.sandbox


def events(workspace: Path, run: str = "last") -> list[dict[str, Any]]:
    logged = gm("log", "--json", run, cwd=workspace)
    return [json.loads(line) for line in logged.stdout.splitlines()]


def test_a_run_sees_the_catalogue_and_loading_a_skill_is_journaled(workspace: Path) -> None:
    write_skill(workspace / ".gm" / "skills", "deploy-docs")
    (workspace / ".gm" / "skills" / "deploy-docs" / "check.sh").write_text("echo ok\n")
    moves = [
        {"tool_calls": [{"name": "load_skill", "args": {"name": "deploy-docs"}}]},
        {"tool_calls": [{"name": "load_skill", "args": {"name": "no-such-skill"}}]},
        {"finish": "read it"},
    ]
    write_script(workspace / "moves.yaml", moves)
    write_task(workspace / "task.md", "Deploy the docs.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0

    journal = events(workspace)
    loaded = next(e for e in journal if e["kind"] == "context.loaded")["data"]
    assert "- deploy-docs: The deploy-docs skill." in loaded["text"]  # the catalogue
    assert "- run-tests:" in loaded["text"]  # and the built-ins
    assert "deploy-docs (project)" in loaded["skills"]
    returned = [e["data"] for e in journal if e["kind"] == "tool.returned"]
    assert returned[0]["ok"] and "# skill deploy-docs (project: " in returned[0]["output"]
    assert "Do it." in returned[0]["output"] and "- check.sh" in returned[0]["output"]
    assert not returned[1]["ok"] and "no skill is called 'no-such-skill'" in returned[1]["output"]


def test_a_task_without_load_skill_in_its_tools_is_shown_no_catalogue(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done"}])
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml", tools=["read_file"])
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    assert not [e for e in events(workspace) if e["kind"] == "context.loaded"]


SKILL_MD = """---
name: greet-in-python
description: Write a Python greeting script and run it to check it prints.
---
# Greet in Python

1. Write `hello.py` with `write_file`.
2. Run it with `run_shell` and check the output.
"""


def test_learn_drafts_a_valid_skill_from_a_run_and_saves_it_when_told(workspace: Path) -> None:
    write_script(
        workspace / "moves.yaml",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "args": {"path": "hello.py", "content": "print('hi')\n"}}
                ]
            },
            {"finish": "wrote hello.py"},
        ],
    )
    write_task(workspace / "task.md", "Write hello.py.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    writer = write_script(workspace / "writer.yaml", [{"text": f"```markdown\n{SKILL_MD}```"}])

    declined = gm("skills", "learn", "--model", f"scripted:{writer}", cwd=workspace)
    assert declined.returncode == 0 and "not saved" in declined.stderr  # no terminal: no
    assert declined.stdout == SKILL_MD  # the draft, shown without its fence
    assert not (workspace / ".gm" / "skills").exists()

    saved = gm("skills", "learn", "last", "--model", f"scripted:{writer}", "--yes", cwd=workspace)
    assert saved.returncode == 0, saved.stderr
    path = workspace / ".gm" / "skills" / "greet-in-python" / "SKILL.md"
    assert parse_skill(path, "project").description.startswith("Write a Python greeting")
    assert "greet-in-python" in discover_skills(workspace, {"HOME": str(workspace)}).names()

    again = gm("skills", "learn", "--model", f"scripted:{writer}", "--yes", cwd=workspace)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten silently


def test_learn_refuses_a_failed_run_and_an_invalid_draft(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done"}])
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    bad = write_script(workspace / "bad.yaml", [{"text": "Here is a skill: do things."}])
    refused = gm("skills", "learn", "--model", f"scripted:{bad}", "--yes", cwd=workspace)
    assert refused.returncode == 2 and "is not valid" in refused.stderr
    assert not (workspace / ".gm" / "skills").exists()
    named = write_script(workspace / "named.yaml", [{"text": SKILL_MD}])
    wrong = gm("skills", "learn", "--name", "other", "--model", f"scripted:{named}", cwd=workspace)
    assert wrong.returncode == 2 and "not 'other'" in wrong.stderr


def test_learn_never_writes_where_the_models_answer_points(workspace: Path) -> None:
    write_script(workspace / "moves.yaml", [{"finish": "done"}])
    write_task(workspace / "task.md", "Finish.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    planted = workspace / ".gm" / "skills" / "evil"
    hostile = (
        '---\n{name: evil, description: "An innocent skill."}\n---\n'
        f"name: {planted}\nname: ../../escaped\n"
    )
    writer = write_script(workspace / "hostile.yaml", [{"text": hostile}])
    shown = gm("skills", "learn", "--model", f"scripted:{writer}", cwd=workspace)
    assert shown.returncode == 0 and "not saved" in shown.stderr
    assert not planted.exists() and not (workspace.parent / "escaped").exists()
    traversal = write_script(workspace / "up.yaml", [{"text": "---\nname: ../up\n---\n"}])
    refused = gm("skills", "learn", "--model", f"scripted:{traversal}", "--yes", cwd=workspace)
    assert refused.returncode == 2 and "is not valid" in refused.stderr
    assert not list(workspace.parent.glob("up*"))
    bad_name = gm("skills", "learn", "--name", "../up", "--yes", cwd=workspace)
    assert bad_name.returncode == 2 and "is not a skill name" in bad_name.stderr
