"""File tools: read_file, list_dir, search, write_file, edit_file."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from gm_agent.errors import ToolError
from gm_agent.patches import walk_files
from gm_agent.tools._paths import PROTECTED_DIRS, resolve_in_workspace
from gm_agent.tools._registry import FileWrite, Outcome, Reply, Tool, ToolContext

__all__ = ["FILE_TOOLS"]

MAX_LIST_ENTRIES = 500
MAX_SEARCH_MATCHES = 200
MAX_SEARCH_FILE_BYTES = 2_000_000
MAX_LINE_CHARS = 300


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _relative(context: ToolContext, path: Path) -> str:
    return path.relative_to(os.path.realpath(context.workspace)).as_posix() or "."


def _read_bytes(path: Path, shown: str) -> bytes:
    if not path.exists():
        raise ToolError(f"{shown!r} does not exist")
    if not stat.S_ISREG(path.stat().st_mode):
        raise ToolError(f"{shown!r} is not a regular file")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(
            f"{shown!r} is a binary file ({len(data)} bytes); it cannot be shown as text"
        )
    return data


def _read_text(path: Path, shown: str) -> str:
    return _read_bytes(path, shown).decode("utf-8", "replace")


# -- read_file ---------------------------------------------------------------


class ReadFileArgs(_Args):
    path: str = Field(description="file path, relative to the project directory")
    start_line: int | None = Field(default=None, ge=1, description="first line to show (1-based)")
    end_line: int | None = Field(default=None, ge=1, description="last line to show (inclusive)")


def read_file(context: ToolContext, args: ReadFileArgs) -> Outcome:
    path = resolve_in_workspace(context.workspace, args.path)
    lines = _read_text(path, args.path).splitlines(keepends=True)
    start = args.start_line or 1
    end = min(args.end_line or len(lines), len(lines))
    if start > max(len(lines), 1):
        raise ToolError(f"{args.path!r} has {len(lines)} lines; start_line={start} is past the end")
    text = "".join(lines[start - 1 : end])
    cap = context.limits.read_cap_bytes
    encoded = text.encode()
    if len(encoded) > cap:
        text = encoded[:cap].decode("utf-8", "ignore")
        shown_end = start - 1 + text.count("\n")
        text += (
            f"\n[truncated at {cap} bytes: showing lines {start}-{shown_end} of {len(lines)}; "
            "use start_line and end_line to read the rest]"
        )
    return Reply(text)


# -- list_dir ----------------------------------------------------------------


class ListDirArgs(_Args):
    path: str = Field(default=".", description="directory, relative to the project directory")


def list_dir(context: ToolContext, args: ListDirArgs) -> Outcome:
    path = resolve_in_workspace(context.workspace, args.path)
    if not path.is_dir():
        raise ToolError(f"{args.path!r} is not a directory")
    entries = sorted(path.iterdir(), key=lambda p: p.name)
    lines = [
        f"{entry.name}/" if entry.is_dir() else entry.name
        for entry in entries
        if not (path == Path(os.path.realpath(context.workspace)) and entry.name in PROTECTED_DIRS)
    ]
    if not lines:
        return Reply(f"{args.path!r} is empty")
    if len(lines) > MAX_LIST_ENTRIES:
        extra = len(lines) - MAX_LIST_ENTRIES
        lines = [*lines[:MAX_LIST_ENTRIES], f"[... {extra} more entries]"]
    return Reply("\n".join(lines))


# -- search ------------------------------------------------------------------


class SearchArgs(_Args):
    pattern: str = Field(description="Python regular expression to look for, line by line")
    path: str = Field(default=".", description="directory or file to search in")
    glob: str | None = Field(default=None, description="only files whose name matches, e.g. *.py")


def search(context: ToolContext, args: SearchArgs) -> Outcome:
    try:
        regex = re.compile(args.pattern)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from exc
    start = resolve_in_workspace(context.workspace, args.path)
    if not start.exists():
        raise ToolError(f"{args.path!r} does not exist")
    root = Path(os.path.realpath(context.workspace))
    matches: list[str] = []
    for file in walk_files(root, start):
        if args.glob and not fnmatch.fnmatch(file.name, args.glob):
            continue
        try:
            if file.stat().st_size > MAX_SEARCH_FILE_BYTES:
                continue
            data = file.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if regex.search(line):
                matches.append(f"{_relative(context, file)}:{number}: {line[:MAX_LINE_CHARS]}")
                if len(matches) >= MAX_SEARCH_MATCHES:
                    matches.append(f"[stopped at {MAX_SEARCH_MATCHES} matches; narrow the search]")
                    return Reply("\n".join(matches))
    return Reply("\n".join(matches) if matches else f"no matches for {args.pattern!r}")


# -- write_file, edit_file -----------------------------------------------------


class WriteFileArgs(_Args):
    path: str = Field(description="file path, relative to the project directory")
    content: str = Field(description="the complete new content of the file")


def write_file(context: ToolContext, args: WriteFileArgs) -> Outcome:
    target = resolve_in_workspace(context.workspace, args.path, write=True)
    if target.is_dir():
        raise ToolError(f"{args.path!r} is a directory")
    before = target.read_bytes() if target.is_file() else None
    return FileWrite(target, args.content.encode(), before)


class EditFileArgs(_Args):
    path: str = Field(description="file path, relative to the project directory")
    old: str = Field(description="exact text to replace; must occur exactly once in the file")
    new: str = Field(description="text to put in its place")


def edit_file(context: ToolContext, args: EditFileArgs) -> Outcome:
    target = resolve_in_workspace(context.workspace, args.path, write=True)
    try:
        text = _read_bytes(target, args.path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(
            f"{args.path!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "edit_file cannot change it exactly, use write_file"
        ) from exc
    if not args.old:
        raise ToolError("`old` is empty; give the exact text to replace")
    count = text.count(args.old)
    if count == 0:
        raise ToolError(
            f"`old` was not found in {args.path!r}; read the file and copy the text exactly"
        )
    if count > 1:
        raise ToolError(
            f"`old` occurs {count} times in {args.path!r}; include more surrounding text so it matches once"
        )
    return FileWrite(target, text.replace(args.old, args.new).encode(), text.encode())


FILE_TOOLS = (
    Tool(
        "read_file",
        "Read a text file, optionally only lines start_line..end_line.",
        ReadFileArgs,
        read_file,
    ),
    Tool(
        "list_dir",
        "List the entries of a directory (directories end with /).",
        ListDirArgs,
        list_dir,
    ),
    Tool(
        "search",
        "Search files for a regular expression; prints path:line: text. Honours .gitignore.",
        SearchArgs,
        search,
    ),
    Tool(
        "write_file",
        "Create or overwrite a file with the given content.",
        WriteFileArgs,
        write_file,
    ),
    Tool(
        "edit_file",
        "Replace one exact occurrence of `old` with `new` in a file.",
        EditFileArgs,
        edit_file,
    ),
)
