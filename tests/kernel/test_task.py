"""task.md parsing: front matter keys, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gm_agent.errors import TaskFileError
from gm_agent.kernel import load_task, parse_task


def test_a_plain_markdown_file_is_all_task() -> None:
    task = parse_task("# Title\n\nDo the thing.\n")
    assert task.text == "# Title\n\nDo the thing."
    assert (task.model, task.max_steps, task.tools, task.instructions) == (None, None, None, None)


def test_front_matter_sets_model_budget_tools_and_instructions() -> None:
    task = parse_task(
        "---\nmodel: openai:gpt-4.1\nmax_steps: 7\ntools: [read_file, search]\n"
        "instructions: Be brief.\n---\nFix the bug.\n"
    )
    assert task.model == "openai:gpt-4.1"
    assert task.max_steps == 7
    assert task.tools == ("read_file", "search")
    assert task.instructions == "Be brief."
    assert task.text == "Fix the bug."


def test_a_relative_scripted_model_is_relative_to_the_task_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "task.md"
    path.parent.mkdir()
    path.write_text("---\nmodel: scripted:moves.yaml\n---\nGo.\n")
    assert load_task(path).model == f"scripted:{tmp_path / 'sub' / 'moves.yaml'}"


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("---\nmodel: [unclosed\n---\nTask\n", 3, "not valid YAML"),
        ("---\nmodel: x\nmax_steps: 3\ncolour: blue\n---\nTask\n", 4, "unknown key"),
        ("---\nmodel: x\nmax_steps: many\n---\nTask\n", 3, "max_steps"),
        ("---\nmodel: x\nmax_steps: 0\n---\nTask\n", 3, "greater than or equal to 1"),
        ("---\nmodel: x\nTask without a closing fence\n", 1, "never closed"),
        ("---\n- a\n- b\n---\nTask\n", 2, "mapping"),
    ],
    ids=["bad-yaml", "unknown-key", "bad-type", "bad-value", "unclosed", "not-a-mapping"],
)
def test_malformed_front_matter_names_the_line(source: str, line: int, words: str) -> None:
    with pytest.raises(TaskFileError, match=words) as info:
        parse_task(source, Path("task.md"))
    assert info.value.line == line
    assert str(info.value).startswith(f"task.md:{line}: ")


def test_an_empty_task_is_refused() -> None:
    with pytest.raises(TaskFileError, match="empty"):
        parse_task("---\nmodel: x\n---\n\n   \n")


def test_an_unreadable_task_file_is_a_task_error(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot read"):
        load_task(tmp_path / "missing.md")


def test_a_control_character_in_the_front_matter_is_a_task_error() -> None:
    with pytest.raises(TaskFileError, match="not valid YAML"):
        parse_task("---\nmodel: a\x07b\n---\nTask\n", Path("task.md"))


def test_max_steps_must_be_a_real_integer() -> None:
    with pytest.raises(TaskFileError, match="max_steps"):
        parse_task("---\nmax_steps: true\n---\nTask\n")


def test_a_byte_order_mark_does_not_hide_the_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "task.md"
    path.write_bytes("\ufeff---\nmax_steps: 3\n---\nTask\n".encode())
    task = load_task(path)
    assert (task.max_steps, task.text) == (3, "Task")
