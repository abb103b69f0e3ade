"""Every path a tool touches resolves inside the workspace, symlinks included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gm_agent.errors import PathOutsideWorkspace
from gm_agent.patches import apply_changes, plan_write
from gm_agent.tools import resolve_in_workspace
from tests.conftest import gm
from tests.helpers import write_script, write_task


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """tmp/app (the workspace) beside tmp/app-secrets, with symlinks in and out."""
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "main.py").write_text("print()\n")
    (app / ".git").mkdir()
    (app / ".gm").mkdir()
    secrets = tmp_path / "app-secrets"
    secrets.mkdir()
    (secrets / "key.txt").write_text("secret\n")
    os.symlink(secrets, app / "link-out")
    os.symlink(secrets / "key.txt", app / "file-link-out")
    os.symlink(app / "src", app / "link-in")
    return app


@pytest.mark.parametrize(
    "path",
    [
        "../app-secrets/key.txt",
        "src/../../app-secrets/key.txt",
        "/etc/passwd",
        "{secrets}/key.txt",  # absolute, and a string prefix of the workspace
        "link-out/key.txt",
        "file-link-out",
        "",
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "sibling-prefix",
        "dir-symlink-out",
        "file-symlink-out",
        "empty",
    ],
)
def test_escapes_are_refused_for_reads_and_writes(layout: Path, path: str) -> None:
    path = path.format(secrets=layout.parent / "app-secrets")
    for write in (False, True):
        with pytest.raises(PathOutsideWorkspace):
            resolve_in_workspace(layout, path, write=write)


@pytest.mark.parametrize(
    "path",
    [
        ".gm/journal.db",
        ".git/config",
        "src/../.gm/x",
        ".gm",
        ".",
        ".GIT/config",
        "vendor/lib/.git/HEAD",
    ],
)
def test_gm_and_git_dirs_and_the_root_are_not_writable(layout: Path, path: str) -> None:
    with pytest.raises(PathOutsideWorkspace):
        resolve_in_workspace(layout, path, write=True)


def test_a_symlink_to_gm_is_not_a_way_in(layout: Path) -> None:
    os.symlink(layout / ".gm", layout / "state")
    with pytest.raises(PathOutsideWorkspace, match=r"\.gm/"):
        resolve_in_workspace(layout, "state/journal.db", write=True)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/main.py", "src/main.py"),
        ("./src/../src/main.py", "src/main.py"),
        ("link-in/main.py", "src/main.py"),  # a symlink that stays inside is followed
        ("new/dir/file.txt", "new/dir/file.txt"),  # does not exist yet
        ("{root}/src/main.py", "src/main.py"),  # absolute inside
    ],
)
def test_paths_inside_resolve_to_their_real_location(
    layout: Path, path: str, expected: str
) -> None:
    resolved = resolve_in_workspace(layout, path.format(root=layout), write=True)
    assert resolved == layout.resolve() / expected


def test_reads_of_gm_state_are_allowed(layout: Path) -> None:
    assert resolve_in_workspace(layout, ".git/config") == layout.resolve() / ".git" / "config"


def test_a_symlink_a_shell_command_made_cannot_be_written_through(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    write_script(
        workspace / "moves.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": f"ln -s {outside} evil"}}]},
            {"tool_calls": [{"name": "write_file", "args": {"path": "evil/x", "content": "x"}}]},
            {"finish": "tried"},
        ],
    )
    task = write_task(workspace / "task.md", "Escape.", model="scripted:moves.yaml")
    result = gm("run", str(task), "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (write,) = [
        e["data"]
        for e in events
        if e["kind"] == "tool.returned" and e["data"]["name"] == "write_file"
    ]
    assert not write["ok"] and "outside the workspace" in write["output"]
    assert list(outside.iterdir()) == []


def test_a_hard_link_to_a_file_outside_is_replaced_not_written_through(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "ws", tmp_path / "outside.txt"
    workspace.mkdir()
    outside.write_text("theirs\n")
    os.link(outside, workspace / "linked.txt")
    target = resolve_in_workspace(workspace, "linked.txt", write=True)
    apply_changes(workspace, [plan_write(workspace, target, b"mine\n")])
    assert (workspace / "linked.txt").read_text() == "mine\n"
    assert outside.read_text() == "theirs\n"  # an atomic replace makes a new file
