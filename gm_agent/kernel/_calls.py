"""Carrying out the model's tool calls, and settling the ones a stop cut off.

Each call goes through the policy (allow, deny, or ask: the run waits for an
approval), is announced as ``tool.called``, has its effect (a read, a file
write, a shell command as a job, the finish) and ends with ``tool.returned``. A
call cut off by a crash or a stop is reconciled from what the journal recorded,
never repeating a recorded effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_never

from pydantic import JsonValue

from gm_agent.errors import ToolError
from gm_agent.events import (
    ApprovalGranted,
    ApprovalRequested,
    RunStatusChanged,
    ToolCallData,
    ToolCalled,
    ToolReturned,
)
from gm_agent.faults import crash_point
from gm_agent.jobs import JobSpec
from gm_agent.kernel._agents import AgentCalls
from gm_agent.kernel._approvals import APPROVAL_POLL_S, Verdict, rules_in_force, verdict
from gm_agent.kernel._core import spec_of
from gm_agent.kernel._decide import INTERRUPTED, cancel_error, shell_job_key
from gm_agent.kernel.state import PatchView
from gm_agent.policy import network_rule
from gm_agent.skills import skill_dirs
from gm_agent.tools import (
    FileWrite,
    Finish,
    Reply,
    ShellCommand,
    SpawnAgent,
    ToolContext,
    WaitAgents,
)

AMBIGUOUS_MESSAGE = (
    "outcome unknown: gm stopped while this command was running, so it may or may not "
    "have run, fully or in part. Check its effects before running it again."
)

STOPPED_MESSAGE = "stopped: the run was cancelled while this call ran; it may have partly run"

UNREAD_MESSAGE = (
    "not finished: the user sent a message while you worked (below); read it, then "
    "go on or call `finish` again"
)


class ToolCalls(AgentCalls):
    """The kernel's part that carries out tool calls (a command can be stopped, and an
    approval is waited for, through :class:`~gm_agent.kernel._controls.Steerable`;
    child runs are started and joined by :class:`~gm_agent.kernel._agents.AgentCalls`)."""

    # -- tool calls ----------------------------------------------------------

    async def _call_tool(self, call: ToolCallData, index: int) -> None:
        if call.call_id in self._state.open_calls:  # announced before a stop
            events = await self._journal.read(self._state.run_id)
            called = [
                e.id
                for e in events
                if isinstance(e.data, ToolCalled) and e.data.call_id == call.call_id
            ]
            await self._reconcile_call(call, index, called[-1] if called else None)
            return
        decided = await self._decide(call)
        if decided is None:  # waiting for a person's answer
            return
        (called,) = await self._emit(
            [
                ToolCalled(
                    call_id=call.call_id,
                    name=call.name,
                    args=call.args,
                    decision=None if decided.risk is None else decided.kind,  # type: ignore[arg-type]
                    risk=decided.risk,
                    rule=decided.rule,
                )
            ],
            self._state.last_response_id,
            fenced=True,
        )
        if decided.kind in ("deny", "denied"):
            return await self._reply(call, False, f"not run: {decided.reason}", called.id)
        await self._carry_out(call, index, called.id)

    # -- approvals -------------------------------------------------------------

    async def _decide(self, call: ToolCallData) -> Verdict | None:
        """The policy's verdict on ``call``; ``None`` when it waits for an approval."""
        decided = verdict(
            self._state,
            call,
            known_tools=tuple(self._tools),
            sandboxed=self._sandbox is not None and self._sandbox.effective,
            policy=self._settings.policy,
        )
        if decided.kind != "ask":
            return decided
        asked = self._state.approval_for(call.call_id)
        if asked is not None and asked.answer is None:  # asked before a pause: wait on it
            await self._emit([RunStatusChanged.between("running", "waiting", "approval")])
            await self._await_answer()
            return None
        assert decided.risk is not None and decided.rule is not None
        requested = ApprovalRequested(
            call_id=call.call_id,
            name=call.name,
            args=call.args,
            risk=decided.risk,
            rule=decided.rule,
            reason=decided.reason,
        )
        if self._approvals == "yes":
            granted = ApprovalGranted(call_id=call.call_id, by="--yes")
            await self._emit([requested, granted], self._state.last_response_id)
            return Verdict("approved", decided.risk, decided.rule, "approved by --yes")
        waiting = RunStatusChanged.between("running", "waiting", "approval")
        await self._emit([requested, waiting], self._state.last_response_id)
        await self._await_answer()
        return None

    async def _await_answer(self) -> None:
        """Wait for the answer to the pending approval, then go on running.

        ``stop`` (unattended) leaves the run ``waiting``; ``yes`` grants it now.
        """
        pending = self._state.pending_approval()
        if pending is not None and self._approvals == "stop":
            return
        if pending is not None and self._approvals == "yes":
            await self._emit([ApprovalGranted(call_id=pending.call_id, by="--yes")])
        while self._state.pending_approval() is not None:
            if self._state.cancel_requested:
                return await self._finish(
                    "cancelled", error=cancel_error(self._state.cancel_reason)
                )
            if self._state.interrupt_requested:
                return await self._set_status("paused", INTERRUPTED)
            await self._clock.sleep(APPROVAL_POLL_S)
            await self._catch_up()
        await self._set_status("running", "answered")

    # -- results ---------------------------------------------------------------

    async def _reply(
        self,
        call: ToolCallData,
        ok: bool,
        output: str,
        cause: str | None,
        *,
        malformed: bool = False,
    ) -> None:
        crash_point("tool.before_returned")
        self._called_since_start = True
        output = self._redactor.redact(output)  # secrets never reach the journal or the model
        returned = ToolReturned(
            call_id=call.call_id, name=call.name, ok=ok, output=output, malformed=malformed
        )
        await self._emit([returned], cause)

    async def _carry_out(self, call: ToolCallData, index: int, cause: str | None) -> None:
        if call.args_error is not None:
            return await self._reply(
                call, False, f"{call.name or 'tool call'}: {call.args_error}", cause, malformed=True
            )
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(self._tools)
            return await self._reply(
                call,
                False,
                f"unknown tool {call.name!r}; the tools you can call are: {known}",
                cause,
                malformed=True,
            )
        workspace = Path(self._state.workspace)
        skills = tuple(skill_dirs(workspace, self._environ))
        context = ToolContext(workspace, self._settings.tools, skills)
        try:
            outcome = await tool.call(context, dict(call.args))
        except ToolError as exc:
            return await self._reply(call, False, str(exc), cause)
        match outcome:
            case Reply():
                await self._reply(call, outcome.ok, outcome.output, cause)
            case FileWrite():
                ok, output = await self._writer().write(outcome, call.call_id, cause)
                await self._reply(call, ok, output, cause)
            case ShellCommand():
                shell = outcome
                ran = await self._stoppable("tool", lambda: self._shell(shell, call, index, cause))
                if ran is not None:  # else stopped by `gm cancel`: the job is recorded cancelled
                    await self._reply(call, *ran, cause)
            case SpawnAgent():
                try:
                    await self._reply(call, *await self._spawn(outcome, call, cause), cause)
                except ToolError as exc:
                    await self._reply(call, False, str(exc), cause)
            case WaitAgents():
                waited = await self._wait(outcome, call, cause)
                if waited is not None:  # else stopped: the loop settles the call
                    await self._reply(call, *waited, cause)
            case Finish() if self._state.inbox:  # a message came in while it worked
                await self._reply(call, False, UNREAD_MESSAGE, cause)
            case Finish():  # the reply and the end are one commit: no crash can split them
                crash_point("tool.before_returned")
                returned = ToolReturned(
                    call_id=call.call_id, name=call.name, ok=True, output="the run is finished"
                )
                await self._finish(
                    "succeeded", summary=outcome.summary, first=[returned], cause=cause, fenced=True
                )
            case _:
                assert_never(outcome)

    async def _reconcile_call(self, call: ToolCallData, index: int, cause: str | None) -> None:
        """Finish a tool call that a stop cut off, without repeating a recorded effect."""
        job = self._state.job_for_call(call.call_id)
        patch = self._state.patch_for_call(call.call_id)
        if job is not None and job.job_kind == "agent":  # a spawn_agent: idempotent
            await self._carry_out(call, index, cause)
            return
        if job is not None:
            match job.status:
                case "succeeded" | "failed":
                    assert job.result is not None
                    ok, output = await self._writer().served(job.result)
                    await self._reply(call, ok, output, cause)
                case "cancelled":
                    await self._reply(
                        call,
                        False,
                        "the command was stopped by an interruption; it may have partly run",
                        cause,
                    )
                case "ambiguous":
                    await self._reply(call, False, AMBIGUOUS_MESSAGE, cause)
                case "started" if job.idempotent:
                    writer = self._writer()
                    ok, output = await writer.shell(spec_of(job), cause, intent_committed=True)
                    await self._reply(call, ok, output, cause)
                case "started":
                    await self._writer().recover_ambiguous(job, AMBIGUOUS_MESSAGE, cause)
                    await self._reply(call, False, AMBIGUOUS_MESSAGE, cause)
            return
        if patch is not None and patch.status == "intent":
            writer = self._writer()
            ok, output = await writer.complete(patch.patch_id, patch.files, call.call_id, cause)
            await self._reply(call, ok, output, cause)
            return
        if patch is not None:  # applied (or conflicted) before the stop: its record stands
            await self._reply(call, patch.status == "applied", patch_reply(patch), cause)
            return
        await self._carry_out(call, index, cause)  # nothing started: reads, finish

    async def _settle_open_calls(self) -> list[ToolReturned]:
        """Before a cancelled run ends: settle the calls a stop cut off, running
        nothing again (a command cut off by a crash is ``job.ambiguous``, with a
        patch for what it changed; a half-applied patch is completed), and give
        each a result, so the run ends at rest."""
        open_ids = set(self._state.open_calls)
        calls = [c for _, c in self._state.pending_calls() if c.call_id in open_ids]
        for call in calls:
            job = self._state.job_for_call(call.call_id)
            patch = self._state.patch_for_call(call.call_id)
            if job is not None and job.status == "started" and job.job_kind == "agent":
                await self._settle_spawn(job)  # its child is then cancelled with the others
            elif job is not None and job.status == "started":
                await self._writer().recover_ambiguous(job, AMBIGUOUS_MESSAGE, None)
            elif patch is not None and patch.status == "intent":
                await self._writer().complete(patch.patch_id, patch.files, call.call_id, None)
        return [
            ToolReturned(call_id=c.call_id, name=c.name, ok=False, output=STOPPED_MESSAGE)
            for c in calls
        ]

    # -- shell commands --------------------------------------------------------

    async def _shell(
        self, command: ShellCommand, call: ToolCallData, index: int, cause: str | None
    ) -> tuple[bool, str]:
        """Run a shell command as a (non-idempotent) job; ``(ok, text for the model)``.

        A rule with ``network = true`` that matches the line lets it reach the
        network; the grant is journaled with the job's intent (``args.network``).
        """
        args: dict[str, JsonValue] = {"command": command.command, "timeout_s": command.timeout_s}
        rules = rules_in_force(self._settings.policy, self._state)
        if network_rule(call.name, call.args, rules) is not None:
            args["network"] = True
        spec = JobSpec(
            job_id=self._clock.new_id(),
            key=shell_job_key(self._state.run_id, self._state.step, index, command),
            kind="shell",
            args=args,
            idempotent=False,
            call_id=call.call_id,
        )
        return await self._writer().shell(spec, cause)


def patch_reply(patch: PatchView) -> str:
    """What a recorded patch says of itself: its files and operations, or its conflict."""
    if patch.status == "conflict":
        return "the files changed on disk since they were read; read them again"
    return "; ".join(f"{f.op} {f.path}" for f in patch.files)
