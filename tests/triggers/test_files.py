"""File-change triggers: which paths count, and one batch per settled burst of real changes."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from gm_agent.triggers.files import ChangeFilter, OwnWriteCheck, watch_changes

pytestmark = pytest.mark.anyio

DEBOUNCE_MS = 150
QUIET = 3 * DEBOUNCE_MS / 1000
"""Long enough for a burst to settle, so what follows is a burst of its own."""

SENTINEL = "watch-is-live.sentinel"


def write(workspace: Path, relative: str, text: str = "content") -> None:
    path = workspace / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Watch:
    """A running `watch_changes`, and the batches it has yielded so far."""

    workspace: Path
    batches: MemoryObjectReceiveStream[tuple[str, ...]]
    debounce_ms: int

    async def next_batch(self) -> tuple[str, ...]:
        """The next batch, leaving out the sentinel (late echoes of the liveness probe)."""
        async for batch in self.batches:
            real = tuple(path for path in batch if path != SENTINEL)
            if real:
                return real
        raise AssertionError("the watch ended")

    async def until_live(self) -> None:
        """Return once the watcher reports changes: the OS watches are set up when
        iteration starts, so a write before that would go unseen. Probes are further
        apart than the debounce, or they would be one never-settling burst."""
        for attempt in range(50):
            write(self.workspace, SENTINEL, str(attempt))
            with anyio.move_on_after(self.debounce_ms / 1000 + 0.3):
                await self.batches.receive()
                return
        raise AssertionError("the watch never reported the sentinel")


@asynccontextmanager
async def watching(
    workspace: Path,
    patterns: Sequence[str],
    own_write: OwnWriteCheck | None = None,
    debounce_ms: int = DEBOUNCE_MS,
) -> AsyncIterator[Watch]:
    """Run `watch_changes` on `workspace` in a task, live, and stop it on the way out
    (which must end it)."""
    stop = anyio.Event()
    send, receive = anyio.create_memory_object_stream[tuple[str, ...]](100)

    async def pump() -> None:
        async with send:
            async for batch in watch_changes(
                workspace,
                [*patterns, SENTINEL],
                debounce_ms=debounce_ms,
                own_write=own_write,
                stop=stop,
            ):
                await send.send(batch)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks, receive:
            tasks.start_soon(pump)
            watch = Watch(workspace, receive, debounce_ms)
            await watch.until_live()
            yield watch
            stop.set()


class OwnWrites:
    """The agent's record of what it last wrote where, and every question asked of it."""

    def __init__(self) -> None:
        self.written: dict[str, str | None] = {}
        self.asked: list[tuple[str, str | None]] = []

    async def __call__(self, relative: str, sha: str | None) -> bool:
        self.asked.append((relative, sha))
        return relative in self.written and self.written[relative] == sha


async def test_a_burst_of_writes_is_one_batch_and_the_next_burst_another(workspace: Path) -> None:
    async with watching(workspace, ["*.md"]) as watch:
        for name in ("c.md", "a.md", "b.md"):
            write(workspace, name)
        assert await watch.next_batch() == ("a.md", "b.md", "c.md")

        write(workspace, "a.md", "second burst")
        assert await watch.next_batch() == ("a.md",)


async def test_a_steady_stream_closer_than_the_debounce_is_one_batch(workspace: Path) -> None:
    """watchfiles alone would hand these over every 100 ms or so: the set of changed paths
    stops growing after the first few writes."""
    names = ("x.md", "y.md", "z.md")
    async with watching(workspace, ["*.md"], debounce_ms=300) as watch:
        for i in range(40):
            write(workspace, names[i % 3], str(i))
            await anyio.sleep(0.03)
        assert await watch.next_batch() == names

        write(workspace, "after.md")
        assert await watch.next_batch() == ("after.md",)


@pytest.mark.parametrize(
    "rejected",
    [".gm/journal.md", ".git/info.md", "build/out.md", "notes/draft-1.md", "readme.txt"],
    ids=["under-.gm", "under-.git", "gitignored-dir", "nested-gitignore", "not-matching"],
)
async def test_a_change_that_does_not_count_triggers_nothing(
    workspace: Path, rejected: str
) -> None:
    write(workspace, ".gitignore", "build/\n")
    write(workspace, "notes/.gitignore", "draft*.md\n")
    for directory in (".gm", ".git", "build"):
        (workspace / directory).mkdir()
    async with watching(workspace, ["*.md"]) as watch:
        write(workspace, rejected)
        await anyio.sleep(QUIET)
        write(workspace, "notes/final.md")
        assert await watch.next_batch() == ("notes/final.md",)


async def test_the_agents_own_write_is_dropped_and_other_content_reported(
    workspace: Path,
) -> None:
    own = OwnWrites()
    async with watching(workspace, ["*.py"], own_write=own) as watch:
        own.written["app.py"] = sha256("by the agent")
        write(workspace, "app.py", "by the agent")
        await anyio.sleep(QUIET)
        write(workspace, "marker.py")
        assert await watch.next_batch() == ("marker.py",)
        assert ("app.py", sha256("by the agent")) in own.asked

        write(workspace, "app.py", "by someone else")
        assert await watch.next_batch() == ("app.py",)
        assert own.asked[-1] == ("app.py", sha256("by someone else"))


async def test_a_deletion_is_reported_with_no_content(workspace: Path) -> None:
    write(workspace, "src/gone.py")
    own = OwnWrites()
    async with watching(workspace, ["*.py"], own_write=own) as watch:
        (workspace / "src" / "gone.py").unlink()
        assert await watch.next_batch() == ("src/gone.py",)
        assert ("src/gone.py", None) in own.asked


async def test_the_agents_own_deletion_is_dropped(workspace: Path) -> None:
    write(workspace, "old.py")
    own = OwnWrites()
    async with watching(workspace, ["*.py"], own_write=own) as watch:
        own.written["old.py"] = None
        (workspace / "old.py").unlink()
        await anyio.sleep(QUIET)
        write(workspace, "marker.py")
        assert await watch.next_batch() == ("marker.py",)


async def test_directories_are_not_reported_only_the_files_in_them(workspace: Path) -> None:
    write(workspace, "old/x.txt")
    (workspace / "full").mkdir()
    async with watching(workspace, ["*"]) as watch:
        (workspace / "empty").mkdir()
        write(workspace, "full/inner.txt")
        assert await watch.next_batch() == ("full/inner.txt",)

        shutil.rmtree(workspace / "old")
        assert await watch.next_batch() == ("old/x.txt",)


async def test_a_directory_moved_in_brings_the_files_in_it_that_count(
    workspace: Path, tmp_path: Path
) -> None:
    write(workspace, ".gitignore", "cache/\n")
    outside = tmp_path / "generated"
    for relative in ("a.md", "deep/b.md", "deep/c.txt", "cache/d.md"):
        write(outside, relative)
    async with watching(workspace, ["*.md"]) as watch:
        outside.rename(workspace / "docs")
        assert await watch.next_batch() == ("docs/a.md", "docs/deep/b.md")


async def test_files_written_into_new_directories_are_all_reported(workspace: Path) -> None:
    """Even those written before the OS watch on their new directory was set up."""
    async with watching(workspace, ["*.md"], debounce_ms=300) as watch:
        for i in range(10):
            write(workspace, f"new-{i}/deep/f.md")
        assert await watch.next_batch() == tuple(f"new-{i}/deep/f.md" for i in range(10))


async def test_a_new_gitignore_takes_effect(workspace: Path) -> None:
    (workspace / "out").mkdir()
    async with watching(workspace, ["*.md"]) as watch:
        write(workspace, ".gitignore", "out/\n")
        await anyio.sleep(QUIET)
        write(workspace, "out/report.md")
        await anyio.sleep(QUIET)
        write(workspace, "marker.md")
        assert await watch.next_batch() == ("marker.md",)


async def test_the_watch_ends_when_stop_is_set(workspace: Path) -> None:
    stop = anyio.Event()
    batches: list[tuple[str, ...]] = []

    async def consume() -> None:
        async for batch in watch_changes(workspace, ["*"], debounce_ms=DEBOUNCE_MS, stop=stop):
            batches.append(batch)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            await anyio.sleep(QUIET)
            stop.set()
    assert batches == []


async def test_cancelling_a_watch_leaves_the_callers_stop_event_alone(workspace: Path) -> None:
    stop = anyio.Event()
    with anyio.fail_after(10), anyio.move_on_after(QUIET):
        async for _ in watch_changes(workspace, ["*"], stop=stop):
            pass
    assert not stop.is_set()


async def test_a_missing_workspace_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        async for _ in watch_changes(tmp_path / "missing", ["*"]):
            pass


async def test_a_debounce_below_one_millisecond_is_refused(workspace: Path) -> None:
    with pytest.raises(ValueError, match="debounce_ms"):
        async for _ in watch_changes(workspace, ["*"], debounce_ms=0):
            pass


@pytest.mark.parametrize(
    ("pattern", "path", "counts"),
    [
        ("docs/**/*.md", "docs/a.md", True),
        ("docs/**/*.md", "docs/x/y/b.md", True),
        ("docs/**/*.md", "docs/a.txt", False),
        ("docs/**/*.md", "other/docs/a.md", False),
        ("*.py", "a.py", True),
        ("*.py", "src/b.py", True),
        ("*.py", "a.pyc", False),
        ("/*.py", "src/b.py", False),
        ("src/", "src/deep/c.txt", True),
        ("src/", "lib/src.txt", False),
        ("*", ".git/x", False),
        ("*", ".gm/journal.db", False),
        ("*", "vendor/.git/config", False),
    ],
)
def test_which_paths_a_pattern_matches(
    workspace: Path, pattern: str, path: str, counts: bool
) -> None:
    assert ChangeFilter(workspace, [pattern]).matches(path) is counts


@pytest.mark.parametrize(
    ("path", "counts"),
    [
        ("main.py", True),
        ("build/gen.py", False),
        ("build/keep.py", False),
        ("src/build/gen.py", False),
        ("debug.log", False),
        ("important.log", True),
        ("pkg/local.py", False),
        ("pkg/shared.py", True),
        ("pkg/sub/local.py", False),
        ("lib/trace.log", True),
        ("lib/other.log", False),
    ],
)
def test_gitignore_files_root_and_nested_as_git_reads_them(
    workspace: Path, path: str, counts: bool
) -> None:
    write(workspace, ".gitignore", "build/\n!build/keep.py\n*.log\n!important.log\n")
    write(workspace, "pkg/.gitignore", "local.py\n")
    write(workspace, "lib/.gitignore", "!trace.log\n")
    assert ChangeFilter(workspace, ["*.py", "*.log"]).matches(path) is counts


def test_an_ignored_directorys_own_gitignore_is_not_read(workspace: Path) -> None:
    write(workspace, ".gitignore", "vendor/\n")
    write(workspace, "vendor/.gitignore", "!*\n")
    assert not ChangeFilter(workspace, ["*"]).matches("vendor/lib.py")


def test_the_files_under_a_directory_that_count(workspace: Path) -> None:
    write(workspace, ".gitignore", "out/\n")
    for relative in ("docs/a.md", "docs/x/b.md", "docs/a.txt", "docs/out/c.md", "docs/.git/d.md"):
        write(workspace, relative)
    change_filter = ChangeFilter(workspace, ["*.md"])
    assert change_filter.files_under("docs") == ["docs/a.md", "docs/x/b.md"]
    assert change_filter.files_under("docs/out") == []
    assert change_filter.files_under("docs/a.md") == []


def test_no_patterns_match_nothing(workspace: Path) -> None:
    assert not ChangeFilter(workspace, []).matches("a.py")


def test_one_string_is_not_a_list_of_patterns(workspace: Path) -> None:
    with pytest.raises(TypeError):
        ChangeFilter(workspace, "*.py")
