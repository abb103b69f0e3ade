"""gm diff / undo / redo on a real git repository, and undo as a property over random runs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gm_agent.clock import FakeClock
from gm_agent.kernel import redo_run, resume_run, run_task, undo_run
from tests.conftest import gm
from tests.helpers import write_script, write_task


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    ).stdout


@pytest.fixture
def repo(workspace: Path) -> Path:
    (workspace / ".gitignore").write_text(".gm/\nmoves.yaml\ntask.md\n")
    (workspace / "a.py").write_text("def f():\n    return 1\n")
    (workspace / "b.txt").write_text("hello\nworld\n")
    (workspace / "c.txt").write_text("delete me\n")
    (workspace / "d.sh").write_text("#!/bin/sh\necho d\n")
    (workspace / "d.sh").chmod(0o755)
    git("init", "-q", cwd=workspace)
    git("add", "-A", cwd=workspace)
    git("commit", "-qm", "start", cwd=workspace)
    return workspace


MOVES = [
    {
        "tool_calls": [
            {"name": "edit_file", "args": {"path": "a.py", "old": "return 1", "new": "return 2"}}
        ]
    },
    {"tool_calls": [{"name": "run_shell", "args": {"command": "sed -i 's/world/there/' b.txt"}}]},
    {
        "tool_calls": [
            {"name": "run_shell", "args": {"command": "rm c.txt && mv d.sh e.sh && chmod 700 e.sh"}}
        ]
    },
    {"finish": "edited, sed, deleted, renamed"},
]


def test_diff_undo_refusal_force_and_redo_on_a_git_repository(repo: Path) -> None:
    write_script(repo / "moves.yaml", MOVES)
    write_task(repo / "task.md", "Change things.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=repo).returncode == 0

    diff = gm("diff", "last", cwd=repo).stdout
    assert "-    return 1\n+    return 2\n" in diff
    assert "-world\n+there\n" in diff
    assert "diff --gm a/c.txt /dev/null" in diff and "-delete me" in diff
    assert "e.sh" in diff and "d.sh" in diff
    stat_lines = gm("diff", "last", "--stat", cwd=repo).stdout
    assert " a.py | +1 -1" in stat_lines and " c.txt | +0 -1" in stat_lines
    after_run = git("status", "--porcelain", cwd=repo)

    (repo / "b.txt").write_text("hello\nthere\nand the user's own line\n")
    refused = gm("undo", "last", cwd=repo)
    assert refused.returncode == 2
    assert "'b.txt'" in refused.stderr and "--force" in refused.stderr
    assert (repo / "a.py").read_text() == "def f():\n    return 2\n"  # nothing touched

    forced = gm("undo", "last", "--force", cwd=repo)
    assert forced.returncode == 0, forced.stderr
    assert git("status", "--porcelain", cwd=repo) == ""  # byte-identical to the commit
    assert stat.S_IMODE((repo / "d.sh").stat().st_mode) == 0o755
    assert gm("diff", "last", cwd=repo).stdout == ""

    redone = gm("redo", "last", cwd=repo)
    assert redone.returncode == 0, redone.stderr
    assert git("status", "--porcelain", cwd=repo) == after_run
    assert (repo / "b.txt").read_text() == "hello\nthere\n"  # the run's version, forced over
    assert stat.S_IMODE((repo / "e.sh").stat().st_mode) == 0o700
    assert gm("redo", "last", cwd=repo).returncode == 2  # nothing left to redo


def test_undo_to_a_seq_keeps_earlier_changes(workspace: Path) -> None:
    moves = [
        {"tool_calls": [{"name": "write_file", "args": {"path": "one.txt", "content": "1\n"}}]},
        {"tool_calls": [{"name": "write_file", "args": {"path": "two.txt", "content": "2\n"}}]},
        {"finish": "two files"},
    ]
    write_script(workspace / "moves.yaml", moves)
    write_task(workspace / "task.md", "Two files.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    log = gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    import json

    first_patch = next(json.loads(line)["seq"] for line in log if '"patch.applied"' in line)
    assert gm("undo", "last", "--to", str(first_patch), cwd=workspace).returncode == 0
    assert (workspace / "one.txt").exists() and not (workspace / "two.txt").exists()


def test_undo_of_one_patch_reverts_it_alone_and_refuses_one_a_later_patch_built_on(
    workspace: Path,
) -> None:
    moves = [
        {"tool_calls": [{"name": "write_file", "args": {"path": "one.txt", "content": "1\n"}}]},
        {"tool_calls": [{"name": "write_file", "args": {"path": "two.txt", "content": "2\n"}}]},
        {"tool_calls": [{"name": "write_file", "args": {"path": "two.txt", "content": "22\n"}}]},
        {"finish": "three patches"},
    ]
    write_script(workspace / "moves.yaml", moves)
    write_task(workspace / "task.md", "Three patches.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0
    log = gm("log", "last", cwd=workspace).stdout.splitlines()
    patches = [
        line.split("patch.applied", 1)[1].split(":")[0].strip()
        for line in log
        if "patch.applied" in line
    ]
    assert len(patches) == 3  # `gm log` names each patch, for --patch

    refused = gm("undo", "last", "--patch", patches[1], cwd=workspace)
    assert (
        refused.returncode == 2 and "two.txt" in refused.stderr
    )  # the third patch changed it since
    assert (workspace / "two.txt").read_text() == "22\n"
    forced = gm("undo", "last", "--patch", patches[1], "--force", cwd=workspace)
    assert forced.returncode == 2 and f"patch {patches[2]} changed 'two.txt'" in forced.stderr
    assert (workspace / "two.txt").read_text() == "22\n"  # even forced: undo the later one first

    undone = gm("undo", "last", "--patch", patches[0][:20], cwd=workspace)  # a unique prefix
    assert undone.returncode == 0, undone.stderr
    assert "reverted 1 patches" in undone.stdout
    assert not (workspace / "one.txt").exists() and (workspace / "two.txt").read_text() == "22\n"

    unknown = gm("undo", "last", "--patch", "NOPE", cwd=workspace)
    assert unknown.returncode == 2 and "no applied patch of run" in unknown.stderr
    assert gm("redo", "last", cwd=workspace).returncode == 0  # redo brings the one patch back
    assert (workspace / "one.txt").read_text() == "1\n"


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".gm" not in p.relative_to(root).parts
    }


names = st.sampled_from(["f0.txt", "f1.txt", "f2.txt", "sub/f3.txt"])
text = st.text(alphabet="abc xyz\n", max_size=40)
binary = st.binary(min_size=1, max_size=24)
ops = st.one_of(
    st.tuples(st.just("write"), names, text),
    st.tuples(st.just("edit"), names, text),
    st.tuples(st.just("binary"), names, binary),
    st.tuples(st.just("rm"), names),
    st.tuples(st.just("mv"), names, names),
    st.tuples(st.just("chmod"), names, st.sampled_from(["600", "644", "755"])),
)


def to_call(op: tuple[Any, ...]) -> dict[str, Any]:
    match op:
        case ("write", path, content):
            return {"name": "write_file", "args": {"path": path, "content": content}}
        case ("edit", path, new):
            return {"name": "edit_file", "args": {"path": path, "old": "a", "new": new}}
        case ("binary", path, data):
            escaped = "".join(f"\\{b:03o}" for b in data)
            return {
                "name": "run_shell",
                "args": {"command": f"mkdir -p sub && printf '{escaped}' > {path}"},
            }
        case ("rm", path):
            return {"name": "run_shell", "args": {"command": f"rm -f {path}"}}
        case ("mv", source, target):
            return {
                "name": "run_shell",
                "args": {"command": f"mkdir -p sub && mv -f {source} {target} 2>/dev/null; true"},
            }
        case ("chmod", path, mode):
            return {
                "name": "run_shell",
                "args": {"command": f"chmod {mode} {path} 2>/dev/null; true"},
            }
    raise AssertionError(op)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    initial=st.dictionaries(
        names, st.tuples(text, st.sampled_from([0o644, 0o600, 0o755])), max_size=4
    ),
    steps=st.lists(ops, min_size=1, max_size=6),
)
def test_undo_restores_every_byte_and_mode_and_redo_the_result(
    tmp_path: Path, initial: dict[str, tuple[str, int]], steps: list[tuple[Any, ...]]
) -> None:
    root = tmp_path / "example"
    shutil.rmtree(root, ignore_errors=True)
    workspace = root / "ws"
    (workspace / "sub").mkdir(parents=True)
    for name, (content, mode) in initial.items():
        (workspace / name).write_text(content)
        (workspace / name).chmod(mode)
    original = tree(workspace)
    script = write_script(
        root / "moves.yaml", [*({"tool_calls": [to_call(op)]} for op in steps), {"finish": "done"}]
    )
    task = write_task(root / "task.md", "Random changes.", model=f"scripted:{script}")

    async def scenario() -> None:
        outcome = await run_task(
            task, workspace=workspace, environ=dict(os.environ), clock=FakeClock(), heartbeat=False
        )
        while outcome.status == "waiting":  # the same failing call thrice: a "loop" stop
            assert outcome.needs is not None and outcome.needs.startswith("loop:")
            outcome = await resume_run(outcome.run_id, workspace=workspace, environ={})
        assert outcome.status == "succeeded"
        final = tree(workspace)
        event("the run changed the tree" if final != original else "the run changed nothing")
        if final != original:
            await undo_run(workspace, outcome.run_id, {})
            assert tree(workspace) == original
            await redo_run(workspace, outcome.run_id, {})
            assert tree(workspace) == final

    anyio.run(scenario)


def run_moves(workspace: Path, moves: list[dict[str, Any]]) -> None:
    write_script(workspace / "moves.yaml", moves)
    write_task(workspace / "task.md", "Change things.", model="scripted:moves.yaml")
    assert gm("run", "task.md", cwd=workspace).returncode == 0


def test_an_undo_cut_off_half_way_is_finished_by_running_it_again(workspace: Path) -> None:
    (workspace / "a.txt").write_text("a0\n")
    (workspace / "b.txt").write_text("b0\n")
    run_moves(
        workspace,
        [
            {"tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "a1\n"}}]},
            {"tool_calls": [{"name": "write_file", "args": {"path": "b.txt", "content": "b1\n"}}]},
            {"finish": "done"},
        ],
    )
    (workspace / "b.txt").write_text("b0\n")  # as if an undo had reverted b.txt, then died
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert (workspace / "a.txt").read_text() == "a0\n" and (
        workspace / "b.txt"
    ).read_text() == "b0\n"


def test_undo_force_restores_a_renamed_file_whose_new_name_was_deleted(workspace: Path) -> None:
    (workspace / "z.txt").write_text("zed\n")
    run_moves(
        workspace,
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "mv z.txt a.txt"}}]},
            {"finish": "moved"},
        ],
    )
    (workspace / "a.txt").unlink()
    assert gm("undo", "last", cwd=workspace).returncode == 2
    assert gm("undo", "last", "--force", cwd=workspace).returncode == 0
    assert (workspace / "z.txt").read_text() == "zed\n" and not (workspace / "a.txt").exists()


def test_undo_to_a_seq_after_a_redo_still_counts_from_the_first_application(
    workspace: Path,
) -> None:
    run_moves(
        workspace,
        [
            {"tool_calls": [{"name": "write_file", "args": {"path": "one.txt", "content": "1\n"}}]},
            {"tool_calls": [{"name": "write_file", "args": {"path": "two.txt", "content": "2\n"}}]},
            {"finish": "two files"},
        ],
    )
    import json

    log = [
        json.loads(line) for line in gm("log", "last", "--json", cwd=workspace).stdout.splitlines()
    ]
    first_patch = next(e["seq"] for e in log if e["kind"] == "patch.applied")
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert gm("redo", "last", cwd=workspace).returncode == 0
    assert gm("undo", "last", "--to", str(first_patch), cwd=workspace).returncode == 0
    assert (workspace / "one.txt").exists() and not (workspace / "two.txt").exists()


def test_a_crashed_run_must_be_resumed_before_it_can_be_undone(workspace: Path) -> None:
    write_script(
        workspace / "moves.yaml",
        [
            {"tool_calls": [{"name": "run_shell", "args": {"command": "echo x > x.txt"}}]},
            {"finish": "ok"},
        ],
    )
    write_task(workspace / "task.md", "Do it.", model="scripted:moves.yaml")
    assert (
        gm("run", "task.md", cwd=workspace, env={"GM_CRASH_AT": "job.after_effect:2"}).returncode
        < 0
    )
    refused = gm("undo", "last", cwd=workspace)
    assert refused.returncode == 2 and "gm resume" in refused.stderr
    assert (workspace / "x.txt").exists()


def test_snapshots_see_same_size_changes_with_a_restored_mtime_and_ignore_symlinks(
    workspace: Path,
) -> None:
    (workspace / "f.txt").write_text("aaaa\n")
    os.utime(workspace / "f.txt", ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    os.symlink("f.txt", workspace / "link.txt")
    run_moves(
        workspace,
        [
            {
                "tool_calls": [
                    {
                        "name": "run_shell",
                        "args": {
                            "command": "printf 'bbbb\\n' > f.txt; touch -d @1000000000 f.txt; echo more >> link.txt"
                        },
                    }
                ]
            },
            {"finish": "sneaky"},
        ],
    )
    diff = gm("diff", "last", cwd=workspace).stdout
    assert "+bbbb" in diff and "link.txt" not in diff
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert (workspace / "f.txt").read_text() == "aaaa\n" and os.path.islink(workspace / "link.txt")


@pytest.mark.parametrize("gitignore_after", ["", "data.txt\n"], ids=["un-ignoring", "ignoring"])
def test_a_command_editing_gitignore_does_not_turn_user_files_into_changes(
    workspace: Path, gitignore_after: str
) -> None:
    (workspace / ".gitignore").write_text("build/\n")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.bin").write_bytes(b"\x00user's build")
    (workspace / "data.txt").write_text("user data\n")
    command = f"printf '{gitignore_after}' > .gitignore"
    run_moves(
        workspace,
        [{"tool_calls": [{"name": "run_shell", "args": {"command": command}}]}, {"finish": "ok"}],
    )
    diff = gm("diff", "last", cwd=workspace).stdout
    changed = [line.split()[2] for line in diff.splitlines() if line.startswith("diff --gm ")]
    assert changed == ["a/.gitignore"]
    assert gm("undo", "last", cwd=workspace).returncode == 0
    assert (workspace / "build" / "out.bin").read_bytes() == b"\x00user's build"
    assert (workspace / "data.txt").read_text() == "user data\n"
    assert (workspace / ".gitignore").read_text() == "build/\n"
