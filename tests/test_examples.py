"""The shipped examples work as their task files say."""

from __future__ import annotations

import shutil
from pathlib import Path

from gm_agent.kernel import load_task
from tests.conftest import REPO, gm

EXAMPLES = REPO / "examples"


def test_every_example_task_parses() -> None:
    tasks = sorted(EXAMPLES.glob("*/task.md"))
    assert len(tasks) >= 2
    for task in tasks:
        assert load_task(task).text


def test_the_docstring_example_replayed_from_its_recorded_moves(tmp_path: Path) -> None:
    example = shutil.copytree(EXAMPLES / "docstring", tmp_path / "docstring")
    project = example / "project"
    result = gm("run", "../task.md", "--model", "scripted:../moves.yaml", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"""Return the middle value of ``values``.' in (project / "stats.py").read_text()
    assert "✓ exit code 0" in result.stdout
    assert "succeeded: Added a Google-style docstring" in result.stdout
