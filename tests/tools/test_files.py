"""The file tools, called as the kernel calls them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gm_agent.errors import ToolError
from gm_agent.settings import ToolSettings
from gm_agent.tools import FileWrite, Outcome, Reply, ShellCommand, ToolContext, builtin_tools

pytestmark = pytest.mark.anyio


async def call(workspace: Path, name: str, **args: Any) -> Outcome:
    (tool,) = [t for t in builtin_tools().select(None) if t.name == name]
    return await tool.call(ToolContext(workspace, ToolSettings(read_cap_bytes=1000)), args)


async def reply(workspace: Path, name: str, **args: Any) -> str:
    outcome = await call(workspace, name, **args)
    assert isinstance(outcome, Reply)
    return outcome.output


async def test_read_file_whole_and_by_line_range(workspace: Path) -> None:
    (workspace / "f.txt").write_text("one\ntwo\nthree\nfour\n")
    assert await reply(workspace, "read_file", path="f.txt") == "one\ntwo\nthree\nfour\n"
    assert (
        await reply(workspace, "read_file", path="f.txt", start_line=2, end_line=3)
        == "two\nthree\n"
    )
    assert await reply(workspace, "read_file", path="f.txt", start_line=4, end_line=99) == "four\n"
    with pytest.raises(ToolError, match="past the end"):
        await call(workspace, "read_file", path="f.txt", start_line=9)


async def test_read_file_caps_its_output_and_says_how_to_read_on(workspace: Path) -> None:
    (workspace / "big.txt").write_text("".join(f"line {i:04}\n" for i in range(1000)))
    text = await reply(workspace, "read_file", path="big.txt")
    assert len(text.encode()) < 1200
    assert (
        "[truncated at 1000 bytes: showing lines 1-100 of 1000; use start_line and end_line" in text
    )


async def test_read_file_refuses_binary_and_missing_files(workspace: Path) -> None:
    (workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(ToolError, match="binary"):
        await call(workspace, "read_file", path="blob.bin")
    with pytest.raises(ToolError, match="does not exist"):
        await call(workspace, "read_file", path="nope.txt")


async def test_list_dir_marks_directories_and_hides_gm_state(workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / ".gm").mkdir()
    (workspace / ".git").mkdir()
    (workspace / "README.md").write_text("x")
    assert await reply(workspace, "list_dir") == "README.md\nsrc/"
    assert await reply(workspace, "list_dir", path="src") == "'src' is empty"


async def test_search_finds_matches_and_honours_gitignore(workspace: Path) -> None:
    (workspace / ".gitignore").write_text("build/\n*.log\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("def target():\n    return 1\n")
    (workspace / "src" / "b.txt").write_text("target in text\n")
    (workspace / "src" / ".gitignore").write_text("generated.py\n")
    (workspace / "src" / "generated.py").write_text("target = 'ignored by the nested .gitignore'\n")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.py").write_text("target = 'ignored'\n")
    (workspace / "debug.log").write_text("target\n")
    assert await reply(workspace, "search", pattern=r"target") == (
        "src/a.py:1: def target():\nsrc/b.txt:1: target in text"
    )
    assert (
        await reply(workspace, "search", pattern="target", glob="*.py")
        == "src/a.py:1: def target():"
    )
    assert (
        await reply(workspace, "search", pattern="nothing-like-this")
        == "no matches for 'nothing-like-this'"
    )
    with pytest.raises(ToolError, match="invalid regular expression"):
        await call(workspace, "search", pattern="(")


async def test_write_and_edit_propose_writes_and_never_touch_disk(workspace: Path) -> None:
    (workspace / "f.txt").write_text("a b a\n")
    write = await call(workspace, "write_file", path="new/f.txt", content="x")
    assert isinstance(write, FileWrite) and write.content == b"x" and write.expected_before is None
    assert not (workspace / "new").exists()
    with pytest.raises(ToolError, match="occurs 2 times"):
        await call(workspace, "edit_file", path="f.txt", old="a", new="c")
    with pytest.raises(ToolError, match="was not found"):
        await call(workspace, "edit_file", path="f.txt", old="zzz", new="c")
    edit = await call(workspace, "edit_file", path="f.txt", old="b", new="B")
    assert isinstance(edit, FileWrite) and edit.content == b"a B a\n"
    assert (workspace / "f.txt").read_text() == "a b a\n"


async def test_run_shell_timeout_is_capped_by_the_settings(workspace: Path) -> None:
    outcome = await call(workspace, "run_shell", command="sleep 1", timeout_s=99999)
    assert outcome == ShellCommand("sleep 1", ToolSettings().shell_max_timeout_s)


def test_every_builtin_tool_has_the_documented_arguments() -> None:
    specs = {t.name: t.spec() for t in builtin_tools().select(None)}
    expected = {
        "read_file": ["path", "start_line", "end_line"],
        "list_dir": ["path"],
        "search": ["pattern", "path", "glob"],
        "write_file": ["path", "content"],
        "edit_file": ["path", "old", "new"],
        "run_shell": ["command", "timeout_s"],
        "load_skill": ["name", "file"],
        "spawn_agent": ["task", "tools", "model", "max_steps", "read_only", "group"],
        "wait_agents": ["group", "policy", "on_failure", "timeout_s"],
        "finish": ["summary"],
    }
    assert {name: list(spec.parameters["properties"]) for name, spec in specs.items()} == expected


async def test_search_never_follows_a_symlink_out_nor_reads_a_fifo(
    workspace: Path, tmp_path: Path
) -> None:
    import os

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text("TOPSECRET=hunter2\n")
    os.symlink(outside / "secret.env", workspace / "notes.txt")
    os.mkfifo(workspace / "pipe")
    (workspace / "inside.txt").write_text("TOPSECRET is a word here\n")
    assert (
        await reply(workspace, "search", pattern="TOPSECRET")
        == "inside.txt:1: TOPSECRET is a word here"
    )


async def test_operating_system_errors_become_tool_errors(workspace: Path) -> None:
    (workspace / "README.md").write_text("x")
    with pytest.raises(ToolError):
        await call(workspace, "read_file", path="README.md/x")
    with pytest.raises(ToolError):
        await call(workspace, "read_file", path="n" * 300)


async def test_edit_file_refuses_text_that_is_not_utf8(workspace: Path) -> None:
    (workspace / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ToolError, match="not UTF-8"):
        await call(workspace, "edit_file", path="latin1.txt", old="caf", new="CAF")
