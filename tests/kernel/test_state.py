"""evolve is a pure fold: tables of plain event lists, no mocks."""

from __future__ import annotations

import pytest

from gm_agent.clock import FakeClock
from gm_agent.errors import IllegalTransition
from gm_agent.events import (
    AnyEventData,
    CheckpointSaved,
    FileChange,
    JobAmbiguous,
    JobIntent,
    JobResult,
    ModelResponse,
    PatchApplied,
    PatchReverted,
    RunCreated,
    RunFinished,
    RunForked,
    RunStatus,
    RunStatusChanged,
    TokenUsage,
    ToolCallData,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from gm_agent.kernel import (
    TERMINAL,
    TRANSITIONS,
    Folder,
    RunState,
    check_moves,
    check_transition,
    evolve,
    fold,
)
from tests.helpers import events_of

CREATED = RunCreated(
    task="t", model="scripted:x", max_steps=5, tools=("read_file",), workspace="/w"
)


def status(from_: RunStatus, to: RunStatus) -> RunStatusChanged:
    return RunStatusChanged.between(from_, to)


def test_run_created_sets_the_run_up() -> None:
    state = fold(events_of(FakeClock(), "R", CREATED))
    assert (state.run_id, state.status, state.model, state.max_steps) == (
        "R",
        "created",
        "scripted:x",
        5,
    )
    assert state.tools == ("read_file",)
    assert state.last_seq == 1


@pytest.mark.parametrize(
    ("datas", "expected"),
    [
        ([UserMessage(text="hi")], {"conversation_roles": ["user"], "step": 0}),
        (
            [
                ModelResponse(
                    job_id="J",
                    model="m",
                    text="ok",
                    usage=TokenUsage(input_tokens=10, output_tokens=2),
                ),
                ModelResponse(
                    job_id="K", model="m", usage=TokenUsage(input_tokens=5, output_tokens=1)
                ),
            ],
            {"conversation_roles": ["assistant", "assistant"], "step": 2, "tokens": (15, 3)},
        ),
        ([ToolCalled(call_id="c1", name="read_file")], {"open_calls": ("c1",)}),
        (
            [
                ToolCalled(call_id="c1", name="read_file"),
                ToolReturned(call_id="c1", name="read_file", ok=False, output="no"),
            ],
            {"open_calls": (), "conversation_roles": ["tool"]},
        ),
        (
            [JobIntent(job_id="J", key="k", job_kind="shell", args_digest="d", idempotent=False)],
            {"open_jobs": ["J"]},
        ),
        (
            [
                JobIntent(job_id="J", key="k", job_kind="shell", args_digest="d", idempotent=False),
                JobResult(job_id="J", key="k", job_kind="shell", ok=True),
            ],
            {"open_jobs": [], "job_statuses": ["succeeded"]},
        ),
        (
            [
                PatchApplied(
                    patch_id="P",
                    files=(
                        FileChange(path="a.txt", op="create", before_sha256=None, after_sha256="x"),
                    ),
                ),
                PatchApplied(
                    patch_id="Q",
                    files=(
                        FileChange(path="a.txt", op="modify", before_sha256="x", after_sha256="y"),
                    ),
                ),
            ],
            {"changed_files": ("a.txt",)},
        ),
    ],
    ids=[
        "user-message",
        "model-responses",
        "tool-called",
        "tool-returned",
        "job-intent",
        "job-result",
        "patches",
    ],
)
def test_evolve_table(datas: list[AnyEventData], expected: dict[str, object]) -> None:
    known = {
        "conversation_roles",
        "step",
        "tokens",
        "open_calls",
        "open_jobs",
        "job_statuses",
        "changed_files",
    }
    assert set(expected) <= known  # a misspelt key would check nothing
    state = fold(events_of(FakeClock(), "R", CREATED, *datas))
    observed: dict[str, object] = {
        "conversation_roles": [t.role for t in state.conversation],
        "step": state.step,
        "tokens": (state.usage.input_tokens, state.usage.output_tokens),
        "open_calls": state.open_calls,
        "open_jobs": [j.job_id for j in state.open_jobs()],
        "job_statuses": [j.status for j in state.jobs],
        "changed_files": state.changed_files,
    }
    assert {key: observed[key] for key in expected} == expected


def test_a_finished_run_keeps_its_summary() -> None:
    state = fold(
        events_of(
            FakeClock(),
            "R",
            CREATED,
            status("created", "running"),
            status("running", "succeeded"),
            RunFinished(status="succeeded", summary="done"),
        )
    )
    assert (state.status, state.summary, state.error) == ("succeeded", "done", None)


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], status("created", "paused")),
        (
            [status("created", "running"), status("running", "succeeded")],
            status("succeeded", "running"),
        ),
        ([status("created", "running")], status("created", "running")),  # stale `from`
        (
            [status("created", "running")],
            RunFinished(status="succeeded", summary="x"),
        ),  # no status change first
    ],
    ids=["created-to-paused", "out-of-terminal", "stale-from", "finish-without-status"],
)
def test_illegal_transitions_raise(path: list, illegal: object) -> None:
    state = fold(events_of(FakeClock(), "R", CREATED, *path))
    (event,) = events_of(FakeClock(), "R", illegal, first_seq=99)  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition) as by_evolve:
        evolve(state, event)
    with pytest.raises(IllegalTransition) as by_check:  # the kernel's check before a commit
        check_moves(state.status, [event])
    assert str(by_check.value) == str(by_evolve.value)
    folder = Folder(state)
    with pytest.raises(IllegalTransition):
        folder.add(event)
    assert folder.state == state  # refused before anything changed


def test_the_check_before_a_commit_accepts_what_fold_accepts() -> None:
    events = events_of(FakeClock(), "R", *MIXED)
    assert check_moves(RunState().status, events) == fold(events).status
    for cut in range(len(events)):
        before = fold(events[:cut])
        assert check_moves(before.status, events[cut:]) == fold(events[cut:], before).status


def test_terminal_statuses_have_no_way_out_and_every_other_can_end() -> None:
    for terminal in TERMINAL:
        assert TRANSITIONS[terminal] == frozenset()
        with pytest.raises(IllegalTransition):
            check_transition(terminal, "running")
    for live in set(TRANSITIONS) - TERMINAL:
        assert {"failed", "cancelled"} <= TRANSITIONS[live]


def test_folding_the_same_events_twice_gives_a_byte_identical_state() -> None:
    clock = FakeClock()
    events = events_of(
        clock,
        "R",
        CREATED,
        UserMessage(text="héllo"),
        status("created", "running"),
        ModelResponse(
            job_id="J",
            model="m",
            tool_calls=(ToolCallData(call_id="c", name="read_file", args={"path": "a"}),),
        ),
        ToolCalled(call_id="c", name="read_file", args={"path": "a"}),
        ToolReturned(call_id="c", name="read_file", ok=True, output="x"),
    )
    first, second = fold(events), fold(list(events))
    assert first.canonical_json() == second.canonical_json()
    assert first.state_hash() == second.state_hash()
    assert fold(events[3:], fold(events[:3])) == first  # folding in two parts is the same fold
    assert fold(events[:-1]).state_hash() != first.state_hash()


def test_evolve_does_not_touch_its_input() -> None:
    (event,) = events_of(FakeClock(), "R", CREATED)
    empty = RunState()
    evolve(empty, event)
    assert empty == RunState()


MIXED: list[AnyEventData] = [
    CREATED,
    UserMessage(text="go"),
    status("created", "running"),
    JobIntent(job_id="m1", key="k1", job_kind="model", args_digest="d", idempotent=True),
    ModelResponse(
        job_id="m1",
        model="x",
        tool_calls=(ToolCallData(call_id="c1", name="run_shell", args={"command": "ls"}),),
        usage=TokenUsage(input_tokens=3, output_tokens=2),
    ),
    JobResult(job_id="m1", key="k1", job_kind="model", ok=True),
    ToolCalled(call_id="c1", name="run_shell", args={"command": "ls"}),
    JobIntent(job_id="s1", key="k2", job_kind="shell", args_digest="d", idempotent=False),
    JobAmbiguous(job_id="s1", key="k2", job_kind="shell", message="unknown"),
    PatchApplied(
        patch_id="p1",
        call_id="c1",
        files=(FileChange(path="a", op="create", before_sha256=None, after_sha256="ab"),),
    ),
    ToolReturned(call_id="c1", name="run_shell", ok=False, output="outcome unknown"),
    CheckpointSaved(upto_seq=11, state_hash="h", steps=1),
    PatchReverted(patch_id="p1", undo_id="u1", files=()),
]


def test_fold_equals_evolve_applied_event_by_event() -> None:
    events = events_of(FakeClock(), "R", *MIXED)
    stepwise = RunState()
    for event in events:
        stepwise = evolve(stepwise, event)
    assert fold(events).canonical_json() == stepwise.canonical_json()
    assert fold(events[5:], fold(events[:5])).state_hash() == stepwise.state_hash()


def test_a_checkpoint_event_changes_nothing_but_the_last_seq() -> None:
    events = events_of(FakeClock(), "R", *MIXED[:11])
    before = fold(events)
    (saved,) = events_of(FakeClock(), "R", MIXED[11], first_seq=12)
    after = evolve(before, saved)
    assert after.model_copy(update={"last_seq": before.last_seq}) == before
    assert after.last_seq == 12


def test_a_fork_keeps_the_conversation_and_starts_its_own_jobs_and_patches() -> None:
    parent = fold(events_of(FakeClock(), "P", *MIXED[:11]))
    forked = RunForked(parent_id="P", fork_seq=11, task="t", model="scripted:other", max_steps=9)
    (event,) = events_of(FakeClock(), "F", forked, first_seq=40)
    state = evolve(parent, event)
    assert (state.run_id, state.status, state.model, state.max_steps) == (
        "F",
        "created",
        "scripted:other",
        9,
    )
    assert (state.parent_id, state.fork_seq) == ("P", 11)
    assert state.conversation == parent.conversation and state.step == parent.step
    assert state.usage == parent.usage
    assert (state.jobs, state.patches, state.changed_files) == ((), (), ())


def test_a_folder_knows_a_safe_point_as_the_state_does() -> None:
    folder = Folder()
    seen = []
    for event in events_of(FakeClock(), "R", *MIXED):
        folder.add(event)
        assert folder.at_rest() == folder.state.at_rest()
        seen.append(folder.at_rest())
    assert False in seen and True in seen  # inside the shell call, and between steps


def test_a_folder_read_between_events_equals_evolve_event_by_event() -> None:
    """The kernel's live fold: state read after each event, as the kernel reads it."""
    folder, state = Folder(), RunState()
    for event in events_of(FakeClock(), "R", *MIXED):
        folder.add(event)
        state = evolve(state, event)
        assert folder.state.canonical_json() == state.canonical_json()
        assert folder.state is folder.state  # kept until the next event
        assert folder.open_jobs() == state.open_jobs()
        assert folder.at_rest() == state.at_rest()
    assert Folder(state).open_jobs() == state.open_jobs()  # started from a state, too


def test_an_approval_is_pending_until_answered_and_always_is_remembered_for_the_run() -> None:
    from gm_agent.events import ApprovalGranted, ApprovalRequested

    asked = ApprovalRequested(
        call_id="c1", name="run_shell", args={}, risk="dangerous", rule="run_shell:x", reason="r"
    )
    before = fold(events_of(FakeClock(), "R", CREATED, asked))
    pending = before.pending_approval()
    assert pending is not None and pending.call_id == "c1"
    (granted,) = events_of(
        FakeClock(), "R", ApprovalGranted(call_id="c1", always="run"), first_seq=3
    )
    after = evolve(before, granted)
    assert after.pending_approval() is None
    assert after.approval_for("c1").answer == "granted"  # type: ignore[union-attr]
    assert after.approved_rules == ("run_shell:x",)


@pytest.mark.parametrize(("repeats", "stops"), [(2, False), (3, True), (4, False)])
def test_a_loop_is_the_same_answered_call_exactly_three_times_in_a_row(
    repeats: int, stops: bool
) -> None:
    from gm_agent.kernel._decide import loop_reason

    datas: list[AnyEventData] = [CREATED, UserMessage(text="go"), status("created", "running")]
    for n in range(repeats):
        call = ToolCallData(call_id=f"c{n}", name="list_dir", args={})
        datas += [
            ModelResponse(job_id=f"m{n}", model="x", tool_calls=(call,)),
            ToolReturned(call_id=f"c{n}", name="list_dir", ok=True, output="a.txt"),
        ]
    reason = loop_reason(fold(events_of(FakeClock(), "R", *datas)))
    assert (reason is not None) == stops


def test_a_step_s_model_attempts_count_its_stopped_requests_only() -> None:
    """A stopped request (interrupt, preempting message) gets a new key next time."""
    from gm_agent.events import JobCancelled
    from gm_agent.kernel._decide import model_attempts

    def model_job(job_id: str, step: int, outcome: AnyEventData | None) -> list[AnyEventData]:
        intent = JobIntent(
            job_id=job_id,
            key=job_id,
            job_kind="model",
            args_digest="d",
            idempotent=True,
            args={"model": "x", "step": step},
        )
        return [intent] if outcome is None else [intent, outcome]

    def cancelled(job_id: str) -> JobCancelled:
        return JobCancelled(job_id=job_id, key=job_id, job_kind="model", reason="stopped")

    datas: list[AnyEventData] = [CREATED, UserMessage(text="go"), status("created", "running")]
    datas += model_job("a", 1, cancelled("a"))  # step 1 was stopped once,
    datas += model_job("b", 1, JobResult(job_id="b", key="b", job_kind="model", ok=True))
    datas += [
        JobIntent(job_id="s", key="s", job_kind="shell", args_digest="d", idempotent=False),
        JobResult(job_id="s", key="s", job_kind="shell", ok=True),
    ]
    datas += model_job("c", 2, cancelled("c"))  # step 2 twice,
    datas += model_job("d", 2, cancelled("d"))
    datas += model_job("e", 2, None)  # and is being asked again
    state = fold(events_of(FakeClock(), "R", *datas))
    assert [model_attempts(state, step) for step in (1, 2, 3)] == [1, 2, 0]
