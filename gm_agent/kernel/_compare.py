"""``gm compare A B``: where two runs part ways, and how their results differ.

Runs are compared step by step: a step is the model's move and the results of
its tool calls. The first step whose move (text, tool names and arguments; call
ids aside) or results differ is the divergence. The workspaces are compared by
each run's final files: what its patches (and, for a fork, its parent's up to
the fork point) left in each file it touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gm_agent.journal import Journal
from gm_agent.kernel._checkpoint import load_state
from gm_agent.kernel.state import RunState, Turn
from gm_agent.patches import count_lines, render_diff

__all__ = ["Comparison", "FileState", "RunSummary", "StepView", "compare_runs"]

FileState = tuple[str | None, int | None]
"""A file as a run left it: (sha256 of its content or ``None`` when absent, mode)."""


@dataclass(frozen=True)
class StepView:
    """One step of a run: its move, and each tool call with ``ok`` and the result's text."""

    number: int
    text: str
    calls: tuple[tuple[str, dict[str, Any], bool | None, str], ...]

    def same_move(self, other: StepView) -> bool:
        """Same text and the same tool calls with the same arguments, in order."""
        return (self.text, [c[:2] for c in self.calls]) == (
            other.text,
            [c[:2] for c in other.calls],
        )


@dataclass(frozen=True)
class RunSummary:
    """One side of a comparison: status, model, steps and tokens, and its steps."""

    run_id: str
    status: str
    model: str
    steps: tuple[StepView, ...]
    input_tokens: int
    output_tokens: int
    summary: str | None
    error: str | None


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side.

    Attributes:
        a, b: the runs.
        diverged_at: the first step (1-based) whose move or results differ, or
            ``None`` when every step of both is the same.
        moves_differ: at that step the moves differ (else only the results do).
        file_diffs: ``(path, unified diff from A's file to B's)`` for each file the
            runs left differently, by path.
    """

    a: RunSummary
    b: RunSummary
    diverged_at: int | None
    moves_differ: bool
    file_diffs: tuple[tuple[str, str, int, int], ...]


def _steps(state: RunState) -> tuple[StepView, ...]:
    results: dict[str, Turn] = {t.call_id: t for t in state.conversation if t.call_id}
    steps: list[StepView] = []
    for turn in state.conversation:
        if turn.role != "assistant":
            continue
        calls = tuple(
            (
                c.name,
                dict(c.args),
                results[c.call_id].ok if c.call_id in results else None,
                results[c.call_id].text if c.call_id in results else "",
            )
            for c in turn.tool_calls
        )
        steps.append(StepView(len(steps) + 1, turn.text, calls))
    return tuple(steps)


def _summary(state: RunState) -> RunSummary:
    return RunSummary(
        run_id=state.run_id,
        status=state.status,
        model=state.model,
        steps=_steps(state),
        input_tokens=state.usage.input_tokens,
        output_tokens=state.usage.output_tokens,
        summary=state.summary,
        error=state.error,
    )


async def final_files(
    journal: Journal, run_id: str, upto_seq: int | None = None
) -> tuple[dict[str, FileState], dict[str, FileState]]:
    """What ``run_id``'s applied patches found and left in each file they touched.

    Returns:
        ``(start, end)``: each path's state before the run first changed it, and
        after its last applied change (a fork's include its parent's up to the
        fork point).
    """
    state, _ = await load_state(journal, run_id, upto_seq)
    start: dict[str, FileState] = {}
    end: dict[str, FileState] = {}
    if state.parent_id is not None and state.fork_seq is not None:
        start, end = await final_files(journal, state.parent_id, state.fork_seq)
    for patch in state.patches:
        if patch.status != "applied":
            continue
        for change in patch.files:
            if change.op == "rename" and change.old_path:
                start.setdefault(change.old_path, (change.before_sha256, change.before_mode))
                end[change.old_path] = (None, None)
                start.setdefault(change.path, (None, None))
            else:
                start.setdefault(change.path, (change.before_sha256, change.before_mode))
            end[change.path] = (change.after_sha256, change.mode)
    return start, end


async def compare_runs(journal: Journal, run_a: str, run_b: str) -> Comparison:
    """Compare runs ``run_a`` and ``run_b`` (ids) of the same workspace.

    Raises:
        JournalError: the journal cannot be read.
    """
    state_a, _ = await load_state(journal, run_a)
    state_b, _ = await load_state(journal, run_b)
    a, b = _summary(state_a), _summary(state_b)
    diverged_at: int | None = None
    moves_differ = False
    for step_a, step_b in zip(a.steps, b.steps, strict=False):
        if step_a != step_b:
            diverged_at, moves_differ = step_a.number, not step_a.same_move(step_b)
            break
    else:
        if len(a.steps) != len(b.steps):
            diverged_at, moves_differ = min(len(a.steps), len(b.steps)) + 1, True
    return Comparison(a, b, diverged_at, moves_differ, await _file_diffs(journal, run_a, run_b))


async def _file_diffs(
    journal: Journal, run_a: str, run_b: str
) -> tuple[tuple[str, str, int, int], ...]:
    start_a, end_a = await final_files(journal, run_a)
    start_b, end_b = await final_files(journal, run_b)
    differing: dict[str, tuple[FileState, FileState]] = {}
    for path in sorted({*end_a, *end_b}):
        left = end_a.get(path, start_b.get(path, (None, None)))
        right = end_b.get(path, start_a.get(path, (None, None)))
        if left != right:
            differing[path] = (left, right)
    blobs = await journal.get_blobs(
        sha for pair in differing.values() for sha, _ in pair if sha is not None
    )
    diffs: list[tuple[str, str, int, int]] = []
    for path, ((sha_a, mode_a), (sha_b, mode_b)) in differing.items():
        text = render_diff(
            path if sha_a else None,
            path if sha_b else None,
            blobs.get(sha_a) if sha_a else None,
            blobs.get(sha_b) if sha_b else None,
            mode_a,
            mode_b,
        )
        added, removed = count_lines(text)
        diffs.append((path, text, added, removed))
    return tuple(diffs)
