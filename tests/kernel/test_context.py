"""What the model sees: project context files, and compaction near the context window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gm_agent.clock import FakeClock
from gm_agent.events import ContextCompacted, ContextLoaded, Event, ModelResponse, ToolReturned
from gm_agent.journal import Journal
from gm_agent.kernel import Folder, RunState, evolve, fold, replay_run, run_task
from gm_agent.kernel._compaction import estimate_tokens, plan_compaction
from gm_agent.kernel._project_context import MAX_IMPORT_DEPTH, load_project_context
from gm_agent.kernel.context import (
    Messages,
    _dropped_note,  # pyright: ignore[reportPrivateUsage]
    _message,  # pyright: ignore[reportPrivateUsage]
    build_request,
    message_chars,
    system_prompt,
)
from gm_agent.llm import Message, ModelRequest, ToolSpec
from gm_agent.tools import builtin_tools
from tests.helpers import write_script, write_task

pytestmark = pytest.mark.anyio


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def loaded(workspace: Path, cwd: Path | None = None, **options: int) -> ContextLoaded:
    found = load_project_context(workspace, cwd or workspace, **options)  # type: ignore[arg-type]
    assert found is not None
    return found


# -- project context files -----------------------------------------------------


def test_files_are_read_from_the_root_down_to_the_working_directory_nearest_last(
    workspace: Path,
) -> None:
    write(workspace / "AGENTS.md", "root: use tabs")
    write(workspace / "GM.md", "root: gm notes")
    write(workspace / "app" / "CLAUDE.md", "app: use spaces")
    write(workspace / "app" / "api" / "GEMINI.md", "api: no globals")
    write(workspace / "other" / "AGENTS.md", "not on the way down")
    found = loaded(workspace, workspace / "app" / "api")
    assert [f.path for f in found.files] == [
        "AGENTS.md",
        "GM.md",
        "app/CLAUDE.md",
        "app/api/GEMINI.md",
    ]
    text = found.text
    assert text.index("root: use tabs") < text.index("app: use spaces") < text.index("no globals")
    assert "not on the way down" not in text


def test_a_link_to_a_file_already_read_is_read_once(workspace: Path) -> None:
    write(workspace / "AGENTS.md", "the one true file")
    (workspace / "CLAUDE.md").symlink_to("AGENTS.md")
    found = loaded(workspace)
    assert [f.path for f in found.files] == ["AGENTS.md"]
    assert found.text.count("the one true file") == 1


def test_no_file_gives_no_event(workspace: Path) -> None:
    assert load_project_context(workspace, workspace) is None


def test_imports_are_followed_inside_the_workspace_and_not_inside_code(
    workspace: Path, tmp_path: Path
) -> None:
    write(tmp_path / "secret-plans.md", "outside the project")
    write(workspace / "docs" / "style.md", "style: short functions; see @../AGENTS.md")
    write(workspace / "notes.md", "only quoted")
    write(
        workspace / "AGENTS.md",
        "Read @docs/style.md. Mail ops@example.org or ping @nobody.\n"
        "`@notes.md` is quoted, and so is this:\n```\n@notes.md\n```\n"
        "Not this: @../secret-plans.md\n",
    )
    found = loaded(workspace)
    assert [(f.path, f.imported_by) for f in found.files] == [
        ("AGENTS.md", None),
        ("docs/style.md", "AGENTS.md"),  # its import of AGENTS.md is a cycle: read once
    ]
    assert "only quoted" not in found.text
    assert "outside the project" not in found.text
    assert found.skipped == ("@../secret-plans.md in AGENTS.md: outside the workspace",)


def test_imports_nest_to_a_limit(workspace: Path) -> None:
    depth = MAX_IMPORT_DEPTH + 2
    for level in range(depth):
        write(workspace / f"level{level}.md", f"level {level} @level{level + 1}.md")
    write(workspace / "AGENTS.md", "@level0.md")
    found = loaded(workspace)
    assert len(found.files) == 1 + MAX_IMPORT_DEPTH
    assert any("deeper than" in s for s in found.skipped)


def test_the_cap_cuts_the_farthest_file_first(workspace: Path) -> None:
    write(workspace / "AGENTS.md", "far " * 2000)
    write(workspace / "app" / "AGENTS.md", "near: keep me whole")
    found = loaded(workspace, workspace / "app", max_bytes=2000)
    assert len(found.text.encode()) <= 2000
    near = found.files[-1]
    assert (near.path, near.truncated) == ("app/AGENTS.md", False)
    assert found.files[0].truncated and "capped at 2000 bytes" in found.text


async def test_a_run_journals_its_context_and_the_model_sees_it_before_the_task_instructions(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workspace / "AGENTS.md", "Always run `make check`. Token: sk-live-123456789")
    write(workspace / "sub" / "GM.md", "In sub/, write British English.")
    monkeypatch.chdir(workspace / "sub")
    script = write_script(workspace.parent / "moves.yaml", [{"finish": "ok"}])
    task = write_task(
        workspace.parent / "task.md",
        "Do it.",
        model=f"scripted:{script}",
        instructions="Task instructions come last.",
    )
    environ = {**os.environ, "MY_API_KEY": "sk-live-123456789"}
    outcome = await run_task(
        task, workspace=workspace, environ=environ, clock=FakeClock(), heartbeat=False
    )
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        events = await journal.read(outcome.run_id)
    assert [e.kind for e in events[:3]] == ["run.created", "context.loaded", "user.message"]
    context = events[1].data
    assert isinstance(context, ContextLoaded)
    assert [f.path for f in context.files] == ["AGENTS.md", "sub/GM.md"]
    assert "sk-live-123456789" not in context.text  # secrets never reach the journal

    write(workspace / "AGENTS.md", "changed after the run started")
    prompt = system_prompt(fold(events))  # a resumed run sees what the first one saw
    assert "changed after" not in prompt
    assert prompt.index("make check") < prompt.index("British") < prompt.index("come last")


# -- compaction ----------------------------------------------------------------

WINDOW = 16_000
STEPS = 200


async def test_a_200_step_run_with_large_outputs_stays_within_a_small_window(
    workspace: Path,
) -> None:
    write(workspace / "gm.toml", f"[context]\nwindow_tokens = {WINDOW}\n")
    for n in range(3):  # read in turn: the same call thrice in a row would be a loop
        write(workspace / f"big{n}.txt", "".join(f"line {k:05d} of file {n}\n" for k in range(300)))
    moves: list[dict[str, object]] = []
    for step in range(STEPS):
        if step % 10 == 5:  # large arguments count too
            call = {
                "name": "write_file",
                "args": {"path": f"out/{step}.txt", "content": "y" * 5000},
            }
        else:
            call = {"name": "read_file", "args": {"path": f"big{step % 3}.txt"}}
        moves.append({"tool_calls": [call]})
    moves.append({"finish": "read it all"})
    script = write_script(workspace.parent / "moves.yaml", moves)
    task = write_task(
        workspace.parent / "task.md", "Read.", model=f"scripted:{script}", max_steps=STEPS + 1
    )
    outcome = await run_task(
        task, workspace=workspace, environ=dict(os.environ), clock=FakeClock(), heartbeat=False
    )
    assert (outcome.status, outcome.summary) == ("succeeded", "read it all")
    async with await Journal.open(workspace / ".gm" / "journal.db") as journal:
        events = await journal.read(outcome.run_id)
        assert (await replay_run(journal, outcome.run_id)).ok  # compaction replays exactly
    compactions = [e.data for e in events if isinstance(e.data, ContextCompacted)]
    assert len(compactions) >= 2
    assert all(c.tokens_after <= WINDOW // 2 < c.tokens_before for c in compactions)
    assert compactions[-1].dropped_before > 0  # old steps were left out, not only cut
    sent = [e.data.usage.input_tokens for e in events if isinstance(e.data, ModelResponse)]
    assert len(sent) == STEPS + 1
    assert max(sent) < WINDOW  # what the model was sent (the scripted model counts it)
    outputs = [e.data.output for e in events if isinstance(e.data, ToolReturned)]
    assert all("compacted by gm" not in o for o in outputs)  # the journal keeps every byte


def test_compaction_keeps_the_latest_step_whole_and_says_what_was_left_out(
    clock: FakeClock,
) -> None:
    from gm_agent.events import RunCreated, ToolCallData, UserMessage
    from tests.helpers import events_of

    big = "x" * 9000
    datas: list[object] = [
        RunCreated(task="t", model="m", max_steps=99, workspace="/w"),
        UserMessage(text="the task"),
    ]
    for n in range(8):
        call = ToolCallData(call_id=f"c{n}", name="read_file", args={"path": "a"})
        datas.append(ModelResponse(job_id=f"j{n}", model="m", tool_calls=(call,)))
        datas.append(ToolReturned(call_id=f"c{n}", name="read_file", ok=True, output=big))
    datas.append(UserMessage(text="please also check b"))
    state = fold(events_of(clock, "r", *datas))  # type: ignore[arg-type]
    tools = tuple(t.spec() for t in builtin_tools().select(None))
    plan = plan_compaction(state, tools, window_tokens=12_000)
    assert plan is not None and plan.dropped_before > 0
    compacted = fold(events_of(clock, "r", plan, first_seq=100), state)
    request = build_request(compacted, tools)
    assert estimate_tokens(request) == plan.tokens_after <= 6_000
    texts = [m.text for m in request.messages]
    assert texts[1] == "the task"
    assert "were left out to fit the context window" in texts[2]
    last_output = [m for m in request.messages if m.role == "tool"][-1]
    assert last_output.text == big  # the latest step is whole
    assert request.messages[-1].text == "please also check b"
    assert plan_compaction(compacted, tools, window_tokens=12_000) is None  # it fits now


def test_imports_never_read_git_gm_or_env_files(workspace: Path) -> None:
    write(workspace / ".git" / "config", "url = https://token@example.com/repo")
    write(workspace / ".env", "API_KEY=hunter2")
    write(workspace / "AGENTS.md", "See @.git/config and @.env please.")
    found = loaded(workspace)
    assert [f.path for f in found.files] == ["AGENTS.md"]
    assert "token@" not in found.text and "hunter2" not in found.text
    assert len(found.skipped) == 2 and all("private" in s for s in found.skipped)


# -- the message cache -----------------------------------------------------------


def _request_turn_by_turn(state: RunState, tools: tuple[ToolSpec, ...]) -> ModelRequest:
    """The request as build_request made it before it kept a cache: turn by turn."""
    messages = [Message(role="system", text=system_prompt(state))]
    conversation = state.conversation
    first = next((i for i, t in enumerate(conversation) if t.role == "assistant"), 0)
    drop_end = max(first, state.dropped_before)
    for index, turn in enumerate(conversation):
        if first <= index < drop_end:
            if index == first:
                note = _dropped_note(state, list(conversation[first:drop_end]))
                messages.append(Message(role="user", text=note))
            continue
        messages.append(_message(turn, short=index < state.truncated_before))
    return ModelRequest(messages=tuple(messages), tools=tools, step=state.step + 1)


def _growing_run(clock: FakeClock) -> list[Event]:
    """A run whose steps mix long and short outputs, user messages, provider data
    and changed files."""
    from gm_agent.events import FileChange, PatchApplied, RunCreated, ToolCallData, UserMessage
    from tests.helpers import events_of

    datas: list[object] = [
        RunCreated(task="t", model="m", max_steps=99, workspace="/w", instructions="be brief"),
        UserMessage(text="the task"),
    ]
    for n in range(12):
        call = ToolCallData(call_id=f"c{n}", name="read_file", args={"path": "p" * (n * 300)})
        datas.append(
            ModelResponse(
                job_id=f"j{n}",
                model="m",
                text="thinking " * (n * 40),
                tool_calls=(call,),
                provider_data={"signature": "s" * n} if n % 3 == 0 else None,
            )
        )
        output = "é" * (n * 700) if n % 2 else "short"
        datas.append(ToolReturned(call_id=f"c{n}", name="read_file", ok=True, output=output))
        if n % 4 == 1:
            datas.append(UserMessage(text=f"note {n} " + "u" * (n * 200)))
        if n % 5 == 2:
            change = FileChange(path=f"f{n}", op="create", before_sha256=None, after_sha256="a")
            datas.append(PatchApplied(patch_id=f"p{n}", call_id=f"c{n}", files=(change,)))
    return events_of(clock, "r", *datas)  # type: ignore[arg-type]


def test_the_cached_request_and_its_size_are_the_ones_made_turn_by_turn(
    clock: FakeClock,
) -> None:
    tools = tuple(t.spec() for t in builtin_tools().select(None))
    messages = Messages()  # one cache for the whole run, as the kernel keeps it
    folder = Folder()
    for event in _growing_run(clock):
        folder.add(event)
        state = folder.state
        n = len(state.conversation)
        for marks in {(0, 0), (n // 3, 0), (n // 2, n // 4), (n, n // 2), (n + 5, n + 5)}:
            trial = state.model_copy(
                update={"truncated_before": marks[0], "dropped_before": marks[1]}
            )
            expected = _request_turn_by_turn(trial, tools)
            assert build_request(trial, tools, messages=messages) == expected
            assert build_request(trial, tools) == expected
            chars, count = messages.size(state, marks)
            assert count == len(expected.messages)
            assert chars == sum(message_chars(m) for m in expected.messages)
    again = fold(_growing_run(FakeClock()))  # another lineage: the cache starts over
    assert build_request(again, tools, messages=messages) == _request_turn_by_turn(again, tools)


def test_compaction_plans_the_same_with_the_run_s_cache(clock: FakeClock) -> None:
    tools = tuple(t.spec() for t in builtin_tools().select(None))
    messages = Messages()
    state = RunState()
    plans = []
    for event in _growing_run(clock):
        state = evolve(state, event)
        plan = plan_compaction(state, tools, 4_000, messages=messages)
        assert plan == plan_compaction(state, tools, 4_000)
        if plan is not None:
            plans.append(plan)
            request = build_request(
                state.model_copy(
                    update={
                        "truncated_before": plan.truncated_before,
                        "dropped_before": plan.dropped_before,
                    }
                ),
                tools,
            )
            assert estimate_tokens(request) == plan.tokens_after
    assert plans and any(p.dropped_before for p in plans)
