"""Where schemes are found: the project's ``.gm/schemes/``, then the ones gm ships.

A scheme is found by its file's name (``NAME.yaml`` or ``NAME.yml``), which must
be the ``name`` inside it. The project's scheme wins over a shipped one of the
same name. The shipped schemes are the repository's top-level ``schemes/``
folder; a wheel carries them as ``gm_agent/_schemes/`` (pyproject.toml's
``force-include``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from gm_agent.errors import SchemeError
from gm_agent.schemes._load import check_tool_args, check_tools, load_scheme
from gm_agent.schemes._model import Scheme
from gm_agent.schemes._params import check_call

__all__ = [
    "SchemeEntry",
    "SchemeSource",
    "check_calls",
    "check_scheme",
    "find_scheme",
    "list_schemes",
    "scheme_dirs",
]

SchemeSource = Literal["project", "shipped"]
_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SchemeEntry:
    """One scheme file found by :func:`list_schemes`.

    Attributes:
        name: the scheme's name (the file's stem when the file is broken).
        description: its one-line description ("" when broken).
        path: the file.
        source: ``project`` (``.gm/schemes/``) or ``shipped`` (with gm).
        problem: why the file cannot be used (the :class:`SchemeError` message), else None.
    """

    name: str
    description: str
    path: Path
    source: SchemeSource
    problem: str | None = None


def _shipped_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    bundled = package / "_schemes"  # an installed wheel
    return bundled if bundled.is_dir() else package.parent / "schemes"  # a source tree


def scheme_dirs(workspace: Path) -> list[tuple[SchemeSource, Path]]:
    """The folders schemes are looked up in, first wins: ``<workspace>/.gm/schemes/``,
    then the shipped schemes. A folder may not exist."""
    return [("project", workspace / ".gm" / "schemes"), ("shipped", _shipped_dir())]


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def list_schemes(workspace: Path) -> list[SchemeEntry]:
    """Every scheme ``workspace`` can run, by name; a project's hides a shipped one
    of the same name. A broken file is listed with its ``problem``, not skipped.

    Returns:
        The entries sorted by name.
    """
    entries: dict[str, SchemeEntry] = {}
    for source, directory in scheme_dirs(workspace):
        for file in _files(directory):
            if file.stem not in entries:
                entries[file.stem] = _entry(file, source)
    return sorted(entries.values(), key=lambda entry: entry.name)


def _entry(file: Path, source: SchemeSource) -> SchemeEntry:
    try:
        scheme = _load_named(file)
    except SchemeError as exc:
        return SchemeEntry(file.stem, "", file, source, problem=str(exc))
    return SchemeEntry(scheme.name, scheme.description, file, source)


def _load_named(file: Path) -> Scheme:
    """The scheme in ``file``, which must be named after it."""
    scheme = load_scheme(file)
    if scheme.name != file.stem:
        raise SchemeError(
            f"the scheme is named {scheme.name!r} but its file is {file.name!r}: "
            f"rename one (gm finds a scheme by its file's name)",
            path=str(file),
            line=scheme.key_lines.get("name"),
        )
    return scheme


def find_scheme(workspace: Path, name_or_path: str) -> Scheme:
    """The scheme called ``name_or_path``, or in the file it names.

    A path (with a ``/``, or ending in ``.yaml`` or ``.yml``) is read as given,
    relative to the current directory. A name is looked up in
    :func:`scheme_dirs`, the project's first.

    Raises:
        SchemeError: no scheme has the name (the message lists those there
            are), or the file is invalid.
    """
    if "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(_SUFFIXES):
        path = Path(name_or_path)
        folders = {folder.resolve() for _, folder in scheme_dirs(workspace)}
        in_a_folder = path.parent.resolve() in folders  # found by name too: must fit it
        return _load_named(path) if in_a_folder else load_scheme(path)
    for _, directory in scheme_dirs(workspace):
        for suffix in _SUFFIXES:
            file = directory / f"{name_or_path}{suffix}"
            if file.is_file():
                return _load_named(file)
    known = ", ".join(entry.name for entry in list_schemes(workspace)) or "none"
    raise SchemeError(
        f"no scheme named {name_or_path!r} in .gm/schemes/ or among gm's own; "
        f"known: {known}; or give the path of a .yaml file"
    )


def check_scheme(
    workspace: Path, scheme: Scheme, tools: Mapping[str, type[BaseModel]]
) -> list[Scheme]:
    """Everything that can be checked before a run, in ``scheme`` and every scheme
    it calls: the tools named exist (``tools``: name -> argument model, a
    registry's) and a tool step's arguments fit, and each scheme call fits
    (:func:`check_calls`). ``gm scheme validate`` and ``gm scheme run`` both use it.

    Returns:
        The schemes it calls, directly or not, each once.

    Raises:
        SchemeError: the first problem, with its file and line.
    """
    called = check_calls(workspace, scheme)
    for each in (scheme, *called):
        check_tools(each, list(tools))
        check_tool_args(each, tools)
    return called


def check_calls(workspace: Path, scheme: Scheme) -> list[Scheme]:
    """Check every ``scheme:`` step of ``scheme``, and of the schemes it calls,
    before anything runs: the called scheme exists and is valid, no scheme calls
    itself through the chain, and each call's ``params`` fit (:func:`check_call`).

    Args:
        workspace: the project, whose ``.gm/schemes/`` is searched first.
        scheme: the scheme to check.

    Returns:
        The schemes it calls, directly or not, each once.

    Raises:
        SchemeError: the first problem, with the calling step's file and line.
    """
    found: dict[str, Scheme] = {}
    _check_calls(workspace, scheme, [scheme.name], found)
    return list(found.values())


def _check_calls(
    workspace: Path, scheme: Scheme, chain: list[str], found: dict[str, Scheme]
) -> None:
    shown = str(scheme.path) if scheme.path else f"scheme {scheme.name!r}"
    for step in scheme.steps:
        if step.scheme is None:
            continue
        name, line = step.scheme.name, step.line_of("scheme.name")
        if name in chain:
            raise SchemeError(
                f"step {step.name!r} calls scheme {name!r}, which is running already "
                f"({' -> '.join([*chain, name])}); a scheme cannot call itself",
                path=shown,
                line=line,
            )
        try:
            called = found.get(name) or find_scheme(workspace, name)
        except SchemeError as exc:
            raise SchemeError(f"step {step.name!r}: {exc}", path=shown, line=line) from exc
        check_call(called, step.scheme.params, path=shown, line=step.line_of("scheme"))
        if name not in found:
            found[name] = called
            _check_calls(workspace, called, [*chain, name], found)
